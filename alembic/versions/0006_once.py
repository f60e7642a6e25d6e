"""Exactly once across daemons: the Slack events handled, and whose Home tab is open, kept in the database.

Revision ID: 0006_once
Revises: 0005_hosts
Create Date: 2026-11-26 18:00:00+00:00

Written by hand to match gpubot.storage.tables; tests/storage/test_migrations.py checks that they agree.
Both tables start empty: a daemon that kept them in memory forgets them on its restart anyway.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006_once"
down_revision: str | Sequence[str] | None = "0005_hosts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "handled_events",
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_handled_events")),
    )
    op.create_index(op.f("ix_handled_events_handled_at"), "handled_events", ["handled_at"])
    op.create_table(
        "home_viewers",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_home_viewers")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("home_viewers")
    op.drop_index(op.f("ix_handled_events_handled_at"), table_name="handled_events")
    op.drop_table("handled_events")
