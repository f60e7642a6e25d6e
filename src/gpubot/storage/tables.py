"""The database schema as typed SQLAlchemy models.

These models never leave the storage package: `claim_store` converts every row into the core's frozen
dataclasses. `alembic/versions/0001_initial.py` creates the same schema by hand, and a test checks that
the two agree (`alembic.autogenerate.compare_metadata` finds no difference).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from gpubot.core.models import ClaimStatus

# Deterministic constraint names, identical on SQLite and PostgreSQL, so that migrations can name
# (and batch-mode SQLite migrations can recreate) every constraint.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The partial unique index below counts only the claims that hold their GPU.
_ACTIVE_ONLY = text(f"status = '{ClaimStatus.ACTIVE.value}'")


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that goes in aware (any zone) and comes out aware UTC, on every backend.

    SQLite has no timestamp type and SQLAlchemy's SQLite DATETIME silently drops the zone, so values are
    converted to UTC before they are stored and tagged as UTC when read back. PostgreSQL stores
    `timestamptz` and returns it in the session's zone, which is converted to UTC as well.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes and convert aware ones to UTC.

        Raises:
            ValueError: `value` is naive; storing it would silently pick a zone.
        """
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: store aware UTC datetimes")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            # SQLite's DATETIME storage format has no zone; keeping it would make comparisons lie.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return stored values as aware UTC datetimes."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class GpuRow(Base):
    """A GPU seen on a host, identified by UUID; `index` is only where it sits today."""

    __tablename__ = "gpus"
    __table_args__ = (UniqueConstraint("host", "uuid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    uuid: Mapped[str] = mapped_column(String(64))
    index: Mapped[int] = mapped_column("index", Integer)
    name: Mapped[str | None] = mapped_column(String(255))
    present: Mapped[bool] = mapped_column(Boolean)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ClaimRow(Base):
    """One claim of one GPU, from start to release or expiry."""

    __tablename__ = "claims"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'released', 'expired')", name="status"),
        # The rule that matters most: one active claim per GPU, enforced by the database so that any
        # number of concurrent writers in any number of processes get exactly one winner.
        Index(
            "ix_claims_one_active_per_gpu",
            "host",
            "gpu_uuid",
            unique=True,
            sqlite_where=_ACTIVE_ONLY,
            postgresql_where=_ACTIVE_ONLY,
        ),
        # The scheduler's due-work queries (claims to warn, claims past their end).
        Index("ix_claims_status_ends_at", "status", "ends_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    gpu_uuid: Mapped[str] = mapped_column(String(64))
    gpu_index: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(16))
    warned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_by: Mapped[str | None] = mapped_column(String(64))


class ClaimEventRow(Base):
    """One row of the audit log: what happened to a claim, who did it and when."""

    __tablename__ = "claim_events"
    __table_args__ = (Index("ix_claim_events_claim_id", "claim_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    claim_id: Mapped[int] = mapped_column(Integer, ForeignKey("claims.id"))
    kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    # A JSON object as text: small, written once, read only for display and audits.
    detail: Mapped[str] = mapped_column(Text)


class OutboxRow(Base):
    """A DM owed to a person, written in the same transaction as the change it reports."""

    __tablename__ = "outbox"
    __table_args__ = (
        # The delivery loop's query: unsent notices whose next attempt is due.
        Index("ix_outbox_sent_at_next_attempt_at", "sent_at", "next_attempt_at"),
        Index("ix_outbox_claim_id", "claim_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(64))
    claim_id: Mapped[int] = mapped_column(Integer, ForeignKey("claims.id"))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


metadata = Base.metadata
