"""The weekly digests: each one claimed by a daemon, posted once.

Revision ID: 0008_digests
Revises: 0007_usage
Create Date: 2026-11-26 21:00:00+00:00

Written by hand to match gpubot.storage.tables; tests/storage/test_migrations.py checks that they agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008_digests"
down_revision: str | Sequence[str] | None = "0007_usage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "digests",
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("lease", sa.String(length=64), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("posting_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_ts", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("due_at", name=op.f("pk_digests")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("digests")
