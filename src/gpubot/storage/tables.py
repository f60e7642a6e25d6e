"""The database schema as SQLAlchemy Core tables.

The rows never leave the storage package: `claim_store` copies every row into the core's frozen
dataclasses, so the ORM (and the memory it costs to import) has no part here.
`alembic/versions/0001_initial.py` creates the same schema by hand, and a test checks that the two agree
(`alembic.autogenerate.compare_metadata` finds no difference).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

from gpubot.core.models import ClaimStatus

# The Alembic revision these tables describe: the newest script's. A test holds the two together; the
# daemon compares a database's revision with it to skip importing Alembic when there is nothing to do.
SCHEMA_REVISION = "0008_digests"

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


metadata = MetaData(naming_convention=NAMING_CONVENTION)

# A GPU seen on a host, identified by UUID; `index` is only where it sits today. A MIG slice is a row of
# its own (its `MIG-…` UUID), sharing its card's `index`, with its `mig_index` and its card's `parent_uuid`.
gpus = Table(
    "gpus",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("host", String(255), nullable=False),
    Column("uuid", String(64), nullable=False),
    Column("index", Integer, nullable=False),
    Column("name", String(255)),
    Column("present", Boolean, nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    # 0004: set on MIG slices only.
    Column("mig_index", Integer),
    Column("parent_uuid", String(64)),
    Column("mig_profile", String(64)),
    UniqueConstraint("host", "uuid"),
)

# One claim of one GPU, from start to release or expiry.
claims = Table(
    "claims",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("host", String(255), nullable=False),
    Column("gpu_uuid", String(64), nullable=False),
    Column("gpu_index", Integer, nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("warned_at", UtcDateTime()),
    Column("ended_at", UtcDateTime()),
    Column("ended_by", String(64)),
    # 0004: set on a claim of a MIG slice: its card's UUID (a card claim and its slices' claims exclude each
    # other, checked under a lock on the card's `gpus` row) and the slice's index on the card.
    Column("parent_gpu_uuid", String(64)),
    Column("gpu_mig_index", Integer),
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

# One row of the audit log: what happened to a claim, who did it and when.
claim_events = Table(
    "claim_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("claim_id", Integer, ForeignKey("claims.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor_id", String(64)),
    Column("at", UtcDateTime(), nullable=False),
    # A JSON object as text: small, written once, read only for display and audits.
    Column("detail", Text, nullable=False),
    Index("ix_claim_events_claim_id", "claim_id"),
)

# A Slack user's display name as last looked up, for what cannot render a mention (the host CLI's tables,
# the claim form's plain-text errors).
people = Table(
    "people",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("display_name", String(255), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# A DM owed to a person, written in the same transaction as the change it reports.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("claim_id", Integer, ForeignKey("claims.id"), nullable=False),
    Column("actor_id", String(64)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("sent_at", UtcDateTime()),
    # The sender holding the notice (0002): only it may settle it, and only until `next_attempt_at`.
    Column("lease", String(64)),
    # An attempt since then may have reached Slack (sent, answer lost): look in the DM before posting again.
    Column("unsettled_since", UtcDateTime()),
    # Given up: never deliverable (the person is gone) or no longer meaningful; `last_error` says why.
    Column("abandoned_at", UtcDateTime()),
    # The delivery loop's query: unsent notices whose next attempt is due.
    Index("ix_outbox_sent_at_next_attempt_at", "sent_at", "next_attempt_at"),
    Index("ix_outbox_claim_id", "claim_id"),
)

# One host of the fleet (0005): the process that reports for its name, and its latest telemetry. A name has
# one live reporter at a time: `instance` is that process's token (NULL once it released the name), and
# only its reports are accepted until it releases the name or goes silent longer than the host time-out.
hosts = Table(
    "hosts",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("instance", String(64)),
    # Who it is, for the message another process gets ("pid 812 on machine gpu-a").
    Column("holder", String(255), nullable=False),
    # The same as data: a process on the same machine, in the same boot, may look its PID up.
    Column("machine", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("boot_id", String(64)),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("last_report_at", UtcDateTime(), nullable=False),
    # When `sample` was read; the sample is NULL while its telemetry fails (and before the first).
    Column("sampled_at", UtcDateTime()),
    Column("driver_version", String(64)),
    # The latest `HostSample` as compact JSON (storage/sample_json.py).
    Column("sample", Text),
    # The time of the last sample counted into the usage tables (0007): a sample is counted once, whichever
    # process reports it and however often, because counting moves this forward in the same transaction.
    Column("usage_counted_at", UtcDateTime()),
    CheckConstraint("role IN ('serve', 'agent')", name="role"),
)

# A Slack event handled, by the id Slack repeats on each retry: a retry that reaches any daemon finds it here and is
# dropped. Kept a day (Slack retries within minutes), pruned by `handled_at`.
handled_events = Table(
    "handled_events",
    metadata,
    Column("event_id", String(255), primary_key=True),
    Column("handled_at", UtcDateTime(), nullable=False),
    Index("ix_handled_events_handled_at", "handled_at"),
)

# Someone who opened their Home tab, and when they last did: a change that concerns them republishes it, whichever
# daemon made the change and whichever one the tab was opened through.
home_viewers = Table(
    "home_viewers",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("opened_at", UtcDateTime(), nullable=False),
)


def _usage_columns() -> list[Column[object]]:
    """What a usage row sums (0007): seconds observed and busy, utilization × the seconds it was known, peaks."""
    return [
        Column("observed_s", Float, nullable=False),
        Column("busy_s", Float, nullable=False),
        Column("utilization_s", Float, nullable=False),
        Column("utilization_known_s", Float, nullable=False),
        Column("utilization_peak", Integer),
        Column("memory_peak_mib", Integer),
    ]


# Each GPU's usage per minute, kept a day, for the recent trends.
gpu_usage_minutes = Table(
    "gpu_usage_minutes",
    metadata,
    Column("host", String(255), primary_key=True),
    Column("gpu_uuid", String(64), primary_key=True),
    Column("minute", UtcDateTime(), primary_key=True),
    *_usage_columns(),
    Index("ix_gpu_usage_minutes_minute", "minute"),
)

# Each GPU's usage per hour, with its model, kept GPUBOT_USAGE_RETENTION: the patterns by hour of the week, host
# and model are read from here.
gpu_usage_hours = Table(
    "gpu_usage_hours",
    metadata,
    Column("host", String(255), primary_key=True),
    Column("gpu_uuid", String(64), primary_key=True),
    Column("hour", UtcDateTime(), primary_key=True),
    Column("gpu_name", String(255)),
    *_usage_columns(),
    Index("ix_gpu_usage_hours_hour", "hour"),
)

# The hours above summed per host and GPU model: what the team's, a host's and a model's busiest hours are read
# from, a few rows an hour however many GPUs there are.
model_usage_hours = Table(
    "model_usage_hours",
    metadata,
    Column("host", String(255), primary_key=True),
    Column("gpu_name", String(255), primary_key=True),
    Column("hour", UtcDateTime(), primary_key=True),
    *_usage_columns(),
    Index("ix_model_usage_hours_hour", "hour"),
)

# What each claim's GPU did while it was held, and whose processes ran on it (Unix users, comma-separated).
claim_usage = Table(
    "claim_usage",
    metadata,
    Column("claim_id", Integer, ForeignKey("claims.id"), primary_key=True),
    *_usage_columns(),
    Column("users", Text, nullable=False),
)

# Each weekly digest, by the moment it was due (0008): claimed by one daemon with a lease, then posted. A row that
# began posting and never finished is not posted again: whether Slack got it cannot be known, and twice is worse.
digests = Table(
    "digests",
    metadata,
    Column("due_at", UtcDateTime(), primary_key=True),
    Column("channel", String(64), nullable=False),
    Column("lease", String(64)),
    Column("leased_until", UtcDateTime()),
    Column("posting_since", UtcDateTime()),
    Column("posted_at", UtcDateTime()),
    Column("message_ts", String(32)),
)
