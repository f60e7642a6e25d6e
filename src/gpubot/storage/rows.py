"""The store's prepared statements, and the copies of their rows into the core's frozen dataclasses.

The statements of the hot paths are built once: building a statement costs more than running it on a small table (see
BENCHMARKS.md, 'What was changed to meet the targets'). Bound parameters are named apart from the columns they set, as
SQLAlchemy requires.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import Insert, Row, Table, and_, bindparam, exists, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from gpubot.core.models import (
    Claim,
    ClaimStatus,
    ClaimUsage,
    EventKind,
    Gpu,
    Notice,
    NoticeKind,
    OutboxItem,
    Tally,
)
from gpubot.storage import tables
from gpubot.storage.tables import UtcDateTime

if TYPE_CHECKING:
    from typing_extensions import Unpack

    # A row of any width (SQLAlchemy types rows by their columns).
    AnyRow = Row[Unpack[tuple[Any, ...]]]

T = TypeVar("T")

ACTIVE = ClaimStatus.ACTIVE.value

# A MIG card's slices follow it: NULL (the card) sorts first on both databases only when asked to.
PRESENT_GPUS = (
    select(
        tables.gpus.c.host,
        tables.gpus.c.uuid,
        tables.gpus.c.index,
        tables.gpus.c.name,
        tables.gpus.c.mig_index,
        tables.gpus.c.parent_uuid,
        tables.gpus.c.mig_profile,
    )
    .where(tables.gpus.c.present.is_(True))
    .order_by(tables.gpus.c.host, tables.gpus.c.index, tables.gpus.c.mig_index.nulls_first(), tables.gpus.c.uuid)
)
ACTIVE_CLAIMS = (
    select(*tables.claims.c)
    .where(tables.claims.c.status == ACTIVE)
    .order_by(
        tables.claims.c.host, tables.claims.c.gpu_index, tables.claims.c.gpu_mig_index.nulls_first(), tables.claims.c.id
    )
)
# The write lock on a card's row that serialises claims of the card and of its MIG slices on PostgreSQL
# (on SQLite, BEGIN IMMEDIATE already holds the database's write lock).
LOCK_CARD = (
    select(tables.gpus.c.id)
    .where(tables.gpus.c.host == bindparam("host"), tables.gpus.c.uuid == bindparam("card_uuid"))
    .with_for_update()
)
# The active claim a new claim would conflict with through MIG: on the card of a slice, or on a slice of a card.
MIG_CONFLICT = (
    select(*tables.claims.c)
    .where(
        tables.claims.c.status == ACTIVE,
        tables.claims.c.host == bindparam("host"),
        or_(
            tables.claims.c.gpu_uuid == bindparam("parent_uuid"),
            tables.claims.c.parent_gpu_uuid == bindparam("card_uuid"),
        ),
    )
    .limit(1)
)
CLAIM_BY_ID = select(*tables.claims.c).where(tables.claims.c.id == bindparam("claim_id"))
_NEW_CLAIM_COLUMNS = (
    "host",
    "gpu_uuid",
    "gpu_index",
    "user_id",
    "purpose",
    "started_at",
    "ends_at",
    "status",
    "parent_gpu_uuid",
    "gpu_mig_index",
)
# A claim, written only where no MIG conflict is active (no row returned: see MIG_CONFLICT for the holder). One
# statement where a look first would be two on every claim, MIG or not; the unique index covers the GPU itself.
INSERT_CLAIM = (
    insert(tables.claims)
    .from_select(
        _NEW_CLAIM_COLUMNS,
        select(*(bindparam(name, type_=tables.claims.c[name].type) for name in _NEW_CLAIM_COLUMNS)).where(
            ~exists(
                select(tables.claims.c.id).where(
                    tables.claims.c.status == ACTIVE,
                    tables.claims.c.host == bindparam("host"),
                    or_(
                        tables.claims.c.gpu_uuid == bindparam("conflict_parent_uuid"),
                        tables.claims.c.parent_gpu_uuid == bindparam("conflict_card_uuid"),
                    ),
                )
            )
        ),
    )
    .returning(*tables.claims.c)
)
INSERT_EVENT = insert(tables.claim_events)
INSERT_NOTICE = insert(tables.outbox)
# The conditional updates: each changes the claim only while it is active, and returns it as it is now.
_ACTIVE_CLAIM = and_(tables.claims.c.id == bindparam("claim_id"), tables.claims.c.status == ACTIVE)
END_CLAIM = (
    update(tables.claims)
    .where(_ACTIVE_CLAIM)
    .values(status=bindparam("new_status"), ended_at=bindparam("at", type_=UtcDateTime()), ended_by=bindparam("actor"))
    .returning(*tables.claims.c)
)
EXTEND_CLAIM = (
    update(tables.claims)
    .where(_ACTIVE_CLAIM)
    .values(ends_at=bindparam("new_ends_at", type_=UtcDateTime()), warned_at=None)
    .returning(*tables.claims.c)
)
WARN_CLAIM = (
    update(tables.claims)
    .where(_ACTIVE_CLAIM, tables.claims.c.warned_at.is_(None))
    .values(warned_at=bindparam("at", type_=UtcDateTime()))
    .returning(*tables.claims.c)
)
# FOR UPDATE (a no-op on SQLite, where BEGIN IMMEDIATE already holds the write lock) keeps the "from" of
# an extension's audit event true under PostgreSQL's READ COMMITTED.
ACTIVE_END_FOR_UPDATE = select(tables.claims.c.ends_at).where(_ACTIVE_CLAIM).with_for_update()
OPEN_NOTICE = and_(tables.outbox.c.sent_at.is_(None), tables.outbox.c.abandoned_at.is_(None))
DUE_NOTICE = and_(OPEN_NOTICE, tables.outbox.c.next_attempt_at <= bindparam("now", type_=UtcDateTime()))
ANY_DUE_NOTICE = select(tables.outbox.c.id).where(DUE_NOTICE).limit(1)
# A notice with its claim: the outbox's own columns are labelled apart from the claim's.
NOTICE_WITH_CLAIM = select(
    tables.outbox.c.id.label("notice_id"),
    tables.outbox.c.kind.label("notice_kind"),
    tables.outbox.c.user_id.label("notice_user_id"),
    tables.outbox.c.actor_id.label("notice_actor_id"),
    tables.outbox.c.attempts.label("notice_attempts"),
    tables.outbox.c.created_at.label("notice_created_at"),
    tables.outbox.c.unsettled_since.label("notice_unsettled_since"),
    *tables.claims.c,
    *(column.label(f"usage_{column.name}") for column in tables.claim_usage.c if column.name != "claim_id"),
).select_from(
    tables.outbox.join(tables.claims, tables.outbox.c.claim_id == tables.claims.c.id).outerjoin(
        tables.claim_usage, tables.claim_usage.c.claim_id == tables.claims.c.id
    )
)
DUE_NOTICES_OLDEST_FIRST = NOTICE_WITH_CLAIM.where(DUE_NOTICE).order_by(tables.outbox.c.created_at, tables.outbox.c.id)


def upsert(dialect: str, table: Table, values: list[dict[str, Any]], key: list[str], update: Sequence[str]) -> Insert:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` in the engine's dialect.

    Two writers of one row at once (two daemons, a restart overlapping the old process) then cannot race into
    a unique-constraint error.

    Args:
        dialect: the engine's dialect name, "sqlite" or "postgresql" (they spell it alike).
        table: the table written.
        values: the rows.
        key: the columns of the unique constraint.
        update: the columns an existing row takes from the new one.
    """
    statement = (postgresql if dialect == "postgresql" else sqlite).insert(table).values(values)
    return statement.on_conflict_do_update(
        index_elements=key, set_={column: statement.excluded[column] for column in update}
    )


def event_values(
    claim_id: int, kind: EventKind, actor_id: str | None, at: datetime, detail: dict[str, str] | None = None
) -> dict[str, Any]:
    """The parameters of `INSERT_EVENT` for one audit event."""
    return {
        "claim_id": claim_id,
        "kind": kind.value,
        "actor_id": actor_id,
        "at": at,
        "detail": json.dumps(detail or {}, sort_keys=True),
    }


def notice_values(notice: Notice, now: datetime) -> dict[str, Any]:
    """The parameters of `INSERT_NOTICE` for a DM queued at `now`, due at once."""
    return {
        "kind": notice.kind.value,
        "user_id": notice.user_id,
        "claim_id": notice.claim_id,
        "actor_id": notice.actor_id,
        "created_at": now,
        "next_attempt_at": now,
        "attempts": 0,
    }


def to_gpu(row: AnyRow) -> Gpu:
    """A row of `PRESENT_GPUS` as a `Gpu`."""
    host, uuid, index, name, mig_index, parent_uuid, mig_profile = row  # by position: a Row's `index` is tuple.index
    return Gpu(host, uuid, index, name, mig_index, parent_uuid, mig_profile)


def to_claim(row: AnyRow) -> Claim:
    """A row with every column of `claims` as a `Claim`."""
    return Claim(
        id=row.id,
        host=row.host,
        gpu_uuid=row.gpu_uuid,
        gpu_index=row.gpu_index,
        user_id=row.user_id,
        purpose=row.purpose,
        started_at=row.started_at,
        ends_at=row.ends_at,
        status=ClaimStatus(row.status),
        warned_at=row.warned_at,
        ended_at=row.ended_at,
        ended_by=row.ended_by,
        gpu_mig_index=row.gpu_mig_index,
        parent_gpu_uuid=row.parent_gpu_uuid,
    )


def to_outbox_item(row: AnyRow) -> OutboxItem:
    """A row of `NOTICE_WITH_CLAIM` (the notice's columns labelled, then the claim's) as an `OutboxItem`."""
    notice = Notice(
        kind=NoticeKind(row.notice_kind), user_id=row.notice_user_id, claim_id=row.id, actor_id=row.notice_actor_id
    )
    return OutboxItem(
        id=row.notice_id,
        notice=notice,
        claim=to_claim(row),
        attempts=row.notice_attempts,
        created_at=row.notice_created_at,
        unsettled_since=row.notice_unsettled_since,
        usage=None if row.usage_observed_s is None else to_claim_usage(row.id, row, prefix="usage_"),
    )


def to_claim_usage(claim_id: int, row: AnyRow, prefix: str = "") -> ClaimUsage:
    """A `claim_usage` row (its columns named with `prefix`) as a `ClaimUsage`."""
    mapping = row._mapping
    tally = Tally(*(mapping[prefix + name] for name in _TALLY_COLUMNS))
    return ClaimUsage(claim_id, tally, frozenset(filter(None, mapping[prefix + "users"].split(","))))


_TALLY_COLUMNS = (
    "observed_s",
    "busy_s",
    "utilization_s",
    "utilization_known_s",
    "utilization_peak",
    "memory_peak_mib",
)


class Copies(Generic[T]):
    """Rows into objects, reusing the object made from an identical row the last time.

    Most rows are unchanged from one snapshot to the next, and making a Claim cost more than fetching its row (see
    BENCHMARKS.md, 'What was changed to meet the targets'). Safe from several threads at once: each call builds a new
    map and only then replaces the old one, so a racing call at worst converts a row again.
    """

    def __init__(self, convert: Callable[[AnyRow], T]) -> None:
        self._convert = convert
        self._previous: dict[tuple[Any, ...], T] = {}

    def __call__(self, rows: Sequence[AnyRow]) -> list[T]:
        """Each row's object, in the rows' order."""
        previous = self._previous
        copies = {}
        for row in rows:
            key = tuple(row)
            known = previous.get(key)
            copies[key] = known if known is not None else self._convert(row)
        self._previous = copies
        return list(copies.values())


def require_aware(**times: datetime) -> None:
    """Raise ValueError naming the first naive time.

    Checked here as well as in UtcDateTime so that the caller gets a plain ValueError naming the argument,
    not SQLAlchemy's StatementError wrapper.
    """
    for name, value in times.items():
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be an aware datetime, got naive {value.isoformat()}")
