"""MIG slices: the gpus table knows slices and their cards, and a claim of a slice names its card.

Revision ID: 0004_mig
Revises: 0003_people
Create Date: 2026-11-26 17:00:00+00:00

Written by hand to match gpubot.storage.tables; tests/storage/test_migrations.py checks that they agree.
Every new column is nullable: existing GPUs are cards and existing claims are claims of cards, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004_mig"
down_revision: str | Sequence[str] | None = "0003_people"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("gpus") as batch:
        batch.add_column(sa.Column("mig_index", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("parent_uuid", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("mig_profile", sa.String(length=64), nullable=True))
    with op.batch_alter_table("claims") as batch:
        batch.add_column(sa.Column("parent_gpu_uuid", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("gpu_mig_index", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("claims") as batch:
        batch.drop_column("gpu_mig_index")
        batch.drop_column("parent_gpu_uuid")
    with op.batch_alter_table("gpus") as batch:
        batch.drop_column("mig_profile")
        batch.drop_column("parent_uuid")
        batch.drop_column("mig_index")
