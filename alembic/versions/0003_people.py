"""People: display names of Slack users, so that the host CLI and plain-text form errors can show names.

Revision ID: 0003_people
Revises: 0002
Create Date: 2026-11-26 16:00:00+00:00

Written by hand to match gpubot.storage.tables; tests/storage/test_migrations.py checks that they agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003_people"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "people",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_people")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("people")
