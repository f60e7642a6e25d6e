"""Usage analytics: each GPU's usage per minute and hour, per host and model per hour, each claim's, and a mark.

Revision ID: 0007_usage
Revises: 0006_once
Create Date: 2026-11-26 20:00:00+00:00

Written by hand to match gpubot.storage.tables; tests/storage/test_migrations.py checks that they agree.
Usage is counted from the first sample after the upgrade: older samples were never kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007_usage"
down_revision: str | Sequence[str] | None = "0006_once"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _usage_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("observed_s", sa.Float(), nullable=False),
        sa.Column("busy_s", sa.Float(), nullable=False),
        sa.Column("utilization_s", sa.Float(), nullable=False),
        sa.Column("utilization_known_s", sa.Float(), nullable=False),
        sa.Column("utilization_peak", sa.Integer(), nullable=True),
        sa.Column("memory_peak_mib", sa.Integer(), nullable=True),
    ]


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(sa.Column("usage_counted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "gpu_usage_minutes",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("gpu_uuid", sa.String(length=64), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        *_usage_columns(),
        sa.PrimaryKeyConstraint("host", "gpu_uuid", "minute", name=op.f("pk_gpu_usage_minutes")),
    )
    op.create_index(op.f("ix_gpu_usage_minutes_minute"), "gpu_usage_minutes", ["minute"])
    op.create_table(
        "gpu_usage_hours",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("gpu_uuid", sa.String(length=64), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gpu_name", sa.String(length=255), nullable=True),
        *_usage_columns(),
        sa.PrimaryKeyConstraint("host", "gpu_uuid", "hour", name=op.f("pk_gpu_usage_hours")),
    )
    op.create_index(op.f("ix_gpu_usage_hours_hour"), "gpu_usage_hours", ["hour"])
    op.create_table(
        "model_usage_hours",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("gpu_name", sa.String(length=255), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        *_usage_columns(),
        sa.PrimaryKeyConstraint("host", "gpu_name", "hour", name=op.f("pk_model_usage_hours")),
    )
    op.create_index(op.f("ix_model_usage_hours_hour"), "model_usage_hours", ["hour"])
    op.create_table(
        "claim_usage",
        sa.Column("claim_id", sa.Integer(), nullable=False),
        *_usage_columns(),
        sa.Column("users", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_claim_usage_claim_id_claims")),
        sa.PrimaryKeyConstraint("claim_id", name=op.f("pk_claim_usage")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("claim_usage")
    op.drop_index(op.f("ix_model_usage_hours_hour"), table_name="model_usage_hours")
    op.drop_table("model_usage_hours")
    op.drop_index(op.f("ix_gpu_usage_hours_hour"), table_name="gpu_usage_hours")
    op.drop_table("gpu_usage_hours")
    op.drop_index(op.f("ix_gpu_usage_minutes_minute"), table_name="gpu_usage_minutes")
    op.drop_table("gpu_usage_minutes")
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("usage_counted_at")
