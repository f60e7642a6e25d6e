"""The fleet's hosts: who reports for each host name, and each host's latest telemetry sample.

Revision ID: 0005_hosts
Revises: 0004_mig
Create Date: 2026-11-26 17:40:00+00:00

Written by hand to match gpubot.storage.tables; tests/storage/test_migrations.py checks that they agree.
A new table: a database of one host gets its row when its daemon next starts.

Until this revision a host was named by `socket.gethostname()`, which on some machines carries the domain
(`gpu-a.lab.example.org`); from now on by its short hostname (`gpu-a`). The migration runs on the host that
upgrades it (the daemon, or `gpubot db upgrade`), so it renames that machine's GPUs and claims to the short
name: its claims stay its own.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005_hosts"
down_revision: str | Sequence[str] | None = "0004_mig"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "hosts",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("instance", sa.String(length=64), nullable=True),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("machine", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("boot_id", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_report_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sampled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("driver_version", sa.String(length=64), nullable=True),
        sa.Column("sample", sa.Text(), nullable=True),
        sa.CheckConstraint("role IN ('serve', 'agent')", name=op.f("ck_hosts_role")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_hosts")),
    )
    full = socket.gethostname()
    short = full.split(".")[0]
    if short != full:
        for table in ("gpus", "claims"):
            rename = sa.text(f"UPDATE {table} SET host = :short WHERE host = :full")
            op.execute(rename.bindparams(short=short, full=full))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("hosts")
