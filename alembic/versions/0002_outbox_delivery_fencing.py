"""Outbox delivery fencing and outcomes: who holds a notice's lease, unknown outcomes, notices given up.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:00:00+00:00

Issue 11: a sender settles a notice only while it still holds the lease (`lease`); a notice whose last
attempt may have reached Slack says since when (`unsettled_since`), so the next sender looks in the DM
before posting again; a notice that can never be delivered or no longer means anything is given up
(`abandoned_at`, with `last_error` saying why) instead of being retried forever.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("lease", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("unsettled_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("abandoned_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("abandoned_at")
        batch.drop_column("unsettled_since")
        batch.drop_column("lease")
