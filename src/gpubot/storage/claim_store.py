"""`SqlClaimStore`: the core's `ClaimStore` port on SQLAlchemy (SQLite or PostgreSQL).

Every public method is one transaction, run through SQLAlchemy Core: rows are only ever copied into the
core's frozen dataclasses, so the ORM's unit of work would add cost and nothing else (issue 5: a claim
and a release cost ~0.8 ms of CPU each through an ORM session). Races are decided by the database: the partial
unique index on active claims picks one winner among concurrent claims, and every state change is a
conditional ``UPDATE ... WHERE status = 'active'`` so a retried or racing change applies at most once.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, Insert, Row, and_, bindparam, func, insert, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError

from gpubot.core.errors import AlreadyHeld, ClaimChanged, ClaimNotActive, StoreBusy, StoreReadOnly, StoreReplaced
from gpubot.core.models import (
    Claim,
    ClaimEvent,
    ClaimStatus,
    EventKind,
    Gpu,
    NewClaim,
    Notice,
    NoticeKind,
    OutboxItem,
    Person,
)
from gpubot.storage import tables
from gpubot.storage.engine import BUSY_TIMEOUT_MS, commit_counter, is_write_refusal, read_only
from gpubot.storage.fifo_lock import FifoLock
from gpubot.storage.tables import UtcDateTime

logger = logging.getLogger(__name__)

_ACTIVE = ClaimStatus.ACTIVE.value

# How often a claim that lost the unique-index race looks for the winner and, finding none (it ended in
# between), tries again before answering "busy".
_CREATE_ATTEMPTS = 3

# A delivery error is kept for operators; a whole HTML error page is not useful there.
_MAX_ERROR_CHARS = 2000

# SQLite reports a lock it waited `BUSY_TIMEOUT_MS` for with one of these messages.
_LOCKED_MESSAGES = ("database is locked", "database table is locked", "database schema is locked")

_SUPPORTED_DIALECTS = ("sqlite", "postgresql")

T = TypeVar("T")
# The snapshot `answering_from_memory` pinned, with the store it belongs to.
_PINNED: ContextVar[tuple[SqlClaimStore, _Snapshot] | None] = ContextVar("gpubot_pinned_snapshot", default=None)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    # A row of any width (SQLAlchemy types rows by their columns).
    AnyRow = Row[Unpack[tuple[Any, ...]]]


# The statements of the hot paths, built once: building a statement costs more than running it on a small
# table (issue 5). Bound parameters are named apart from the columns they set, as SQLAlchemy requires.
_PRESENT_GPUS = (
    select(tables.gpus.c.host, tables.gpus.c.uuid, tables.gpus.c.index, tables.gpus.c.name)
    .where(tables.gpus.c.present.is_(True))
    .order_by(tables.gpus.c.host, tables.gpus.c.index, tables.gpus.c.uuid)
)
_ACTIVE_CLAIMS = (
    select(*tables.claims.c)
    .where(tables.claims.c.status == _ACTIVE)
    .order_by(tables.claims.c.host, tables.claims.c.gpu_index, tables.claims.c.id)
)
_CLAIM_BY_ID = select(*tables.claims.c).where(tables.claims.c.id == bindparam("claim_id"))
_INSERT_CLAIM = insert(tables.claims).returning(*tables.claims.c)
_INSERT_EVENT = insert(tables.claim_events)
_INSERT_NOTICE = insert(tables.outbox)
# The conditional updates: each changes the claim only while it is active, and returns it as it is now.
_ACTIVE_CLAIM = and_(tables.claims.c.id == bindparam("claim_id"), tables.claims.c.status == _ACTIVE)
_END_CLAIM = (
    update(tables.claims)
    .where(_ACTIVE_CLAIM)
    .values(status=bindparam("new_status"), ended_at=bindparam("at", type_=UtcDateTime()), ended_by=bindparam("actor"))
    .returning(*tables.claims.c)
)
_EXTEND_CLAIM = (
    update(tables.claims)
    .where(_ACTIVE_CLAIM)
    .values(ends_at=bindparam("new_ends_at", type_=UtcDateTime()), warned_at=None)
    .returning(*tables.claims.c)
)
_WARN_CLAIM = (
    update(tables.claims)
    .where(_ACTIVE_CLAIM, tables.claims.c.warned_at.is_(None))
    .values(warned_at=bindparam("at", type_=UtcDateTime()))
    .returning(*tables.claims.c)
)
# FOR UPDATE (a no-op on SQLite, where BEGIN IMMEDIATE already holds the write lock) keeps the "from" of
# an extension's audit event true under PostgreSQL's READ COMMITTED.
_ACTIVE_END_FOR_UPDATE = select(tables.claims.c.ends_at).where(_ACTIVE_CLAIM).with_for_update()
_OPEN_NOTICE = and_(tables.outbox.c.sent_at.is_(None), tables.outbox.c.abandoned_at.is_(None))
_DUE_NOTICE = and_(_OPEN_NOTICE, tables.outbox.c.next_attempt_at <= bindparam("now", type_=UtcDateTime()))
_ANY_DUE_NOTICE = select(tables.outbox.c.id).where(_DUE_NOTICE).limit(1)
# A notice with its claim: the outbox's own columns are labelled apart from the claim's.
_NOTICE_WITH_CLAIM = select(
    tables.outbox.c.id.label("notice_id"),
    tables.outbox.c.kind.label("notice_kind"),
    tables.outbox.c.user_id.label("notice_user_id"),
    tables.outbox.c.actor_id.label("notice_actor_id"),
    tables.outbox.c.attempts.label("notice_attempts"),
    tables.outbox.c.created_at.label("notice_created_at"),
    tables.outbox.c.unsettled_since.label("notice_unsettled_since"),
    *tables.claims.c,
).join_from(tables.outbox, tables.claims, tables.outbox.c.claim_id == tables.claims.c.id)


@dataclass
class _Write:
    """One write transaction: its connection, and what it changed that the snapshot holds."""

    connection: Connection
    # The claims it wrote, as they are after it, when that is all it changed among the snapshot's GPUs
    # and active claims; an empty list when it changed none of them. None (a write that does not say, or
    # one that changed GPUs) makes the next read reload the snapshot.
    claims_written: list[Claim] | None = None


@dataclass(frozen=True)
class _WriteStart:
    """The snapshot a write transaction started from, and the writing connection's data version then."""

    snapshot: _Snapshot
    writer_version: int


@dataclass(frozen=True)
class _Snapshot:
    """Every present GPU and every active claim, as of one value of the SQLite commit counter."""

    version: int
    # Present GPUs per host, ordered by index and UUID (as `list_gpus` returns them).
    gpus: dict[str, tuple[Gpu, ...]]
    # Active claims of every host, ordered by host, GPU index and id (as `active_claims` returns them).
    active: tuple[Claim, ...]


class SqlClaimStore:
    """Claims, their audit log and the DM outbox in a SQL database migrated to head.

    Args:
        engine: from `gpubot.storage.engine.make_engine`; SQLite or PostgreSQL.
        on_notice_queued: called, in the writing thread, after a transaction that queued a DM committed,
            so the sender can deliver it at once instead of at its next poll.

    Raises:
        ValueError: the engine's database is neither SQLite nor PostgreSQL.
    """

    def __init__(self, engine: Engine, on_notice_queued: Callable[[], None] = lambda: None) -> None:
        if engine.dialect.name not in _SUPPORTED_DIALECTS:
            raise ValueError(f"unsupported database {engine.dialect.name!r}: use SQLite or PostgreSQL")
        self._engine = engine
        self._on_notice_queued = on_notice_queued
        self._read_engine = read_only(engine)
        # SQLite files only: the hot reads (GPUs, active claims) are served from a snapshot that is
        # reloaded, in one read transaction, whenever anyone committed anything (issue 5).
        self._commits = commit_counter(engine)
        self._cached: _Snapshot | None = None
        self._loading = threading.Lock()
        # The objects of the last snapshot by the row they were made from: most rows are unchanged from
        # one snapshot to the next, and making a Claim cost more than fetching its row (issue 5).
        self._gpu_copies: dict[tuple[Any, ...], Gpu] = {}
        self._claim_copies: dict[tuple[Any, ...], Claim] = {}
        # SQLite has one writer at a time. This process's writers queue here, and the next one starts the
        # moment the previous one commits; on SQLite's busy handler alone they would poll with sleeps of up
        # to 100 ms (issue 5: claim/release p99 118 ms and a 0.9 s worst case at 8 in flight). Not a source
        # of truth: other processes still queue on the busy timeout, and the unique index decides races.
        self._writer_turn = FifoLock() if engine.dialect.name == "sqlite" else None
        # The SQLite file as it was when opened. A file deleted or replaced under a running process
        # keeps taking its writes (to the unlinked copy) and they vanish at the next start: issue 11
        # saw 5 claims confirmed that way. Every write checks it first.
        self._file = _FileIdentity.of(engine)

    def check_file(self) -> None:
        """Check that the SQLite file is still the one opened (a no-op for any other database).

        Raises:
            StoreReplaced: it was deleted or replaced; from then on, every time.
        """
        if self._file is not None:
            self._file.check()

    # -- GPUs ---------------------------------------------------------------------------------------

    def sync_gpus(self, host: str, gpus: Sequence[Gpu], now: datetime) -> None:
        """Record the GPUs `host` has now (by UUID); those no longer present stop being listed.

        Args:
            host: the host that was sampled.
            gpus: every GPU it has now; each must name `host`.
            now: when they were seen.

        Raises:
            ValueError: a GPU names another host, a UUID appears twice, or `now` is naive.
            StoreBusy: the database stayed locked.
        """
        _require_aware(now=now)
        if any(gpu.host != host for gpu in gpus):
            raise ValueError(f"every GPU synced for {host!r} must name that host")
        uuids = [gpu.uuid for gpu in gpus]
        if len(set(uuids)) != len(uuids):
            raise ValueError("a GPU UUID appears twice in one sync")
        with self._writing() as write:
            if gpus:
                write.connection.execute(self._upsert_gpus(host, gpus, now))
            write.connection.execute(
                update(tables.gpus)
                .where(tables.gpus.c.host == host, tables.gpus.c.present.is_(True), tables.gpus.c.uuid.not_in(uuids))
                .values(present=False)
            )

    def _upsert_gpus(self, host: str, gpus: Sequence[Gpu], now: datetime) -> Insert:
        # INSERT ... ON CONFLICT, so that two syncs of one host at once (a restart overlapping the old
        # process) cannot race into a unique-constraint error; SQLite and PostgreSQL spell it alike.
        rows = [
            {
                "host": host,
                "uuid": gpu.uuid,
                "index": gpu.index,
                "name": gpu.name,
                "present": True,
                "last_seen_at": now,
            }
            for gpu in gpus
        ]
        if self._engine.dialect.name == "postgresql":
            pg_stmt = postgresql.insert(tables.gpus).values(rows)
            excluded = pg_stmt.excluded
            return pg_stmt.on_conflict_do_update(
                index_elements=["host", "uuid"],
                set_={key: excluded[key] for key in ("index", "name", "present", "last_seen_at")},
            )
        lite_stmt = sqlite.insert(tables.gpus).values(rows)
        excluded = lite_stmt.excluded
        return lite_stmt.on_conflict_do_update(
            index_elements=["host", "uuid"],
            set_={key: excluded[key] for key in ("index", "name", "present", "last_seen_at")},
        )

    def list_gpus(self, host: str) -> list[Gpu]:
        """The GPUs present on `host`, ordered by index.

        Args:
            host: the host to list.

        Returns:
            Its present GPUs; GPUs it no longer reports are left out.
        """
        snapshot = self._snapshot()
        if snapshot is not None:
            return list(snapshot.gpus.get(host, ()))
        with self._reading() as connection:
            rows = connection.execute(_PRESENT_GPUS.where(tables.gpus.c.host == host))
            return [_to_gpu(row) for row in rows]

    # -- Claims -------------------------------------------------------------------------------------

    def active_claims(self, host: str | None = None) -> list[Claim]:
        """Active claims (of one host, or all), ordered by host and GPU index.

        Args:
            host: only this host's claims; None for every host.

        Returns:
            The active claims.
        """
        snapshot = self._snapshot()
        if snapshot is not None:
            return [claim for claim in snapshot.active if host is None or claim.host == host]
        query = _ACTIVE_CLAIMS if host is None else _ACTIVE_CLAIMS.where(tables.claims.c.host == host)
        with self._reading() as connection:
            return [_to_claim(row) for row in connection.execute(query)]

    def get_claim(self, claim_id: int) -> Claim | None:
        """One claim by id, whatever its status.

        Args:
            claim_id: the claim's id.

        Returns:
            The claim, or None when there is no such claim.
        """
        with self._reading() as connection:
            row = connection.execute(_CLAIM_BY_ID, {"claim_id": claim_id}).first()
            return _to_claim(row) if row is not None else None

    def create_claims(self, new_claims: Sequence[NewClaim], *, confirm_by_dm: bool = False) -> list[Claim]:
        """Write several claims all or nothing, each with a `claimed` event.

        Args:
            new_claims: the claims to write, each of a different GPU.
            confirm_by_dm: also queue a `claimed` DM to each holder, in the same transaction, so the
                confirmation is delivered (and retried) like every other DM.

        Returns:
            The claims as written (with their ids), in the order given.

        Raises:
            AlreadyHeld: one of the GPUs already has an active claim; nothing was written. It names the
                holder at the moment of the refusal.
            StoreBusy: the database stayed locked.
            ValueError: two of `new_claims` are for the same GPU, or a time is naive.
        """
        for new in new_claims:
            _require_aware(started_at=new.started_at, ends_at=new.ends_at)
        keys = [(new.gpu.host, new.gpu.uuid) for new in new_claims]
        if len(set(keys)) != len(keys):
            raise ValueError("two of the claims are for the same GPU")
        if not new_claims:
            return []
        for _ in range(_CREATE_ATTEMPTS):
            try:
                return self._insert_claims(new_claims, confirm_by_dm)
            except IntegrityError as exc:
                # The partial unique index refused one of them. Everything was rolled back, so name
                # whoever holds that GPU now.
                refusal = self._already_held(new_claims)
                if refusal is not None:
                    raise refusal from exc
                # The holder released in between: the GPU is free again, so try again.
        raise StoreBusy()

    def _insert_claims(self, new_claims: Sequence[NewClaim], confirm_by_dm: bool) -> list[Claim]:
        with self._writing() as write:
            connection = write.connection
            created = []
            for new in new_claims:
                row = connection.execute(
                    _INSERT_CLAIM,
                    {
                        "host": new.gpu.host,
                        "gpu_uuid": new.gpu.uuid,
                        "gpu_index": new.gpu.index,
                        "user_id": new.user_id,
                        "purpose": new.purpose,
                        "started_at": new.started_at,
                        "ends_at": new.ends_at,
                        "status": _ACTIVE,
                    },
                ).one()
                connection.execute(_INSERT_EVENT, _event_values(row.id, EventKind.CLAIMED, new.user_id, new.started_at))
                if confirm_by_dm:
                    notice = Notice(NoticeKind.CLAIMED, new.user_id, row.id)
                    connection.execute(_INSERT_NOTICE, _notice_values(notice, new.started_at))
                created.append(_to_claim(row))
            write.claims_written = created
        if confirm_by_dm:
            self._on_notice_queued()
        return created

    def _already_held(self, new_claims: Sequence[NewClaim]) -> AlreadyHeld | None:
        wanted = or_(
            *(
                and_(tables.claims.c.host == new.gpu.host, tables.claims.c.gpu_uuid == new.gpu.uuid)
                for new in new_claims
            )
        )
        with self._reading() as connection:
            holders = {
                (row.host, row.gpu_uuid): _to_claim(row) for row in connection.execute(_ACTIVE_CLAIMS.where(wanted))
            }
        for new in new_claims:
            holder = holders.get((new.gpu.host, new.gpu.uuid))
            if holder is not None:
                return AlreadyHeld(new.gpu.index, holder.user_id, holder.ends_at)
        return None

    def end_claim(
        self,
        claim_id: int,
        status: ClaimStatus,
        event: EventKind,
        actor_id: str | None,
        now: datetime,
        notice: Notice | None = None,
    ) -> Claim:
        """End an active claim (released or expired), with its event and optional DM, in one transaction.

        Args:
            claim_id: the claim to end.
            status: `RELEASED` or `EXPIRED`.
            event: the audit event to record (`released`, `expired` or `force_released`).
            actor_id: who ended it; None when the bot did (expiry).
            now: when it ended.
            notice: a DM to queue in the outbox with the change.

        Returns:
            The claim as it is now.

        Raises:
            ClaimNotActive: the claim had already ended (or never existed); nothing was written.
            StoreBusy: the database stayed locked.
            ValueError: `status` is `ACTIVE`, or `now` is naive.
        """
        if status is ClaimStatus.ACTIVE:
            raise ValueError("a claim cannot be ended into the active status")
        _require_aware(now=now)
        with self._writing() as write:
            connection = write.connection
            row = connection.execute(
                _END_CLAIM, {"claim_id": claim_id, "new_status": status.value, "at": now, "actor": actor_id}
            ).first()
            if row is None:
                raise ClaimNotActive(claim_id)
            connection.execute(_INSERT_EVENT, _event_values(claim_id, event, actor_id, now))
            if notice is not None:
                connection.execute(_INSERT_NOTICE, _notice_values(notice, now))
            ended = _to_claim(row)
            write.claims_written = [ended]
        if notice is not None:
            self._on_notice_queued()
        return ended

    def extend_claim(
        self,
        claim_id: int,
        ends_at: datetime,
        actor_id: str,
        now: datetime,
        expected_ends_at: datetime | None = None,
    ) -> Claim:
        """Move an active claim's end to `ends_at` and clear its warning, with an `extended` event.

        Args:
            claim_id: the claim to extend.
            ends_at: its new end.
            actor_id: who extended it.
            now: when.

        Returns:
            The claim as it is now.

        Raises:
            ClaimNotActive: the claim had already ended (or never existed); nothing was written.
            StoreBusy: the database stayed locked.
            ValueError: a time is naive.
        """
        _require_aware(ends_at=ends_at, now=now)
        with self._writing() as write:
            connection = write.connection
            previous = connection.execute(_ACTIVE_END_FOR_UPDATE, {"claim_id": claim_id}).scalar()
            if previous is None:
                raise ClaimNotActive(claim_id)
            if expected_ends_at is not None and not _same_second(previous, expected_ends_at):
                raise ClaimChanged(claim_id, previous)
            row = connection.execute(_EXTEND_CLAIM, {"claim_id": claim_id, "new_ends_at": ends_at}).first()
            if row is None:
                raise ClaimNotActive(claim_id)
            detail = {"from": previous.isoformat(), "to": ends_at.astimezone(timezone.utc).isoformat()}
            connection.execute(_INSERT_EVENT, _event_values(claim_id, EventKind.EXTENDED, actor_id, now, detail))
            extended = _to_claim(row)
            write.claims_written = [extended]
            return extended

    def claims_to_warn(self, now: datetime, warn_before: timedelta) -> list[Claim]:
        """Active, not yet warned claims that end within `warn_before` of `now` but have not ended.

        Args:
            now: the current time.
            warn_before: how long before its end a claim's holder is warned.

        Returns:
            Those claims, soonest end first: `now < ends_at <= now + warn_before`.
        """
        _require_aware(now=now)
        snapshot = self._snapshot()
        if snapshot is not None:
            due = now + warn_before
            return sorted((c for c in snapshot.active if c.warned_at is None and now < c.ends_at <= due), key=_by_end)
        query = (
            select(*tables.claims.c)
            .where(
                tables.claims.c.status == _ACTIVE,
                tables.claims.c.warned_at.is_(None),
                tables.claims.c.ends_at > now,
                tables.claims.c.ends_at <= now + warn_before,
            )
            .order_by(tables.claims.c.ends_at, tables.claims.c.id)
        )
        with self._reading() as connection:
            return [_to_claim(row) for row in connection.execute(query)]

    def mark_warned(self, claim_id: int, now: datetime, notice: Notice) -> bool:
        """Set `warned_at` (only if still active and unwarned) and queue the DM.

        Args:
            claim_id: the claim whose holder is warned.
            now: when.
            notice: the warning DM, queued in the same transaction.

        Returns:
            True when this call warned it; False when it had ended or was already warned (nothing written).

        Raises:
            StoreBusy: the database stayed locked.
            ValueError: `now` is naive.
        """
        _require_aware(now=now)
        with self._writing() as write:
            connection = write.connection
            row = connection.execute(_WARN_CLAIM, {"claim_id": claim_id, "at": now}).first()
            if row is None:
                write.claims_written = []
                return False
            connection.execute(_INSERT_EVENT, _event_values(claim_id, EventKind.WARNED, None, now))
            connection.execute(_INSERT_NOTICE, _notice_values(notice, now))
            write.claims_written = [_to_claim(row)]
        self._on_notice_queued()
        return True

    def claims_past_end(self, now: datetime) -> list[Claim]:
        """Active claims whose end is at or before `now`.

        Args:
            now: the current time.

        Returns:
            Those claims, earliest end first.
        """
        _require_aware(now=now)
        snapshot = self._snapshot()
        if snapshot is not None:
            return sorted((c for c in snapshot.active if c.ends_at <= now), key=_by_end)
        query = (
            select(*tables.claims.c)
            .where(tables.claims.c.status == _ACTIVE, tables.claims.c.ends_at <= now)
            .order_by(tables.claims.c.ends_at, tables.claims.c.id)
        )
        with self._reading() as connection:
            return [_to_claim(row) for row in connection.execute(query)]

    # -- Outbox -------------------------------------------------------------------------------------

    def pending_notices(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """Unsent notices whose next attempt is due, oldest first.

        Args:
            now: the current time.
            limit: at most this many.

        Returns:
            The notices, each with its claim as it is now.
        """
        _require_aware(now=now)
        query = (
            _NOTICE_WITH_CLAIM.where(_DUE_NOTICE).order_by(tables.outbox.c.created_at, tables.outbox.c.id).limit(limit)
        )
        with self._reading() as connection:
            return [_to_outbox_item(row) for row in connection.execute(query, {"now": now})]

    def lease_notices(self, now: datetime, lease_until: datetime, limit: int = 50) -> list[OutboxItem]:
        """Take due notices for delivery, pushing their next attempt to `lease_until` in the same transaction.

        Args:
            now: the current time.
            lease_until: when a notice this sender fails to settle becomes due again.
            limit: at most this many.

        Each notice gets a new lease token: only a settlement that names it applies, so a sender whose
        lease ran out and was taken over cannot defer or give up what the new holder is sending. A notice
        is marked unsettled from `now` (unless an earlier attempt already was): if this sender dies before
        settling it, the next one knows that a post may have reached Slack.

        Returns:
            The notices this caller now holds, each with its claim as it is now, its lease, and when an
            earlier attempt that may have reached Slack began (None when none may have).

        Raises:
            StoreBusy: the database stayed locked.
        """
        _require_aware(now=now, lease_until=lease_until)
        token = uuid.uuid4().hex
        # Most calls find nothing due (the sender is woken after every claim change, and polls): a read that
        # says so costs a fraction of a write transaction, which would also queue behind every writer.
        with self._reading() as connection:
            if connection.execute(_ANY_DUE_NOTICE, {"now": now}).first() is None:
                return []
        query = (
            _NOTICE_WITH_CLAIM.where(_DUE_NOTICE)
            .order_by(tables.outbox.c.created_at, tables.outbox.c.id)
            .limit(limit)
            # PostgreSQL: a concurrent sender skips rows this one holds; SQLite's BEGIN IMMEDIATE already
            # serialises the two transactions.
            .with_for_update(of=tables.outbox, skip_locked=True)
        )
        with self._writing() as write:
            write.claims_written = []  # the outbox only
            leased = [
                replace(_to_outbox_item(row), lease=token, leased_until=lease_until)
                for row in write.connection.execute(query, {"now": now})
            ]
            if leased:
                write.connection.execute(
                    update(tables.outbox)
                    .where(tables.outbox.c.id.in_([item.id for item in leased]))
                    .values(
                        next_attempt_at=lease_until,
                        lease=token,
                        unsettled_since=func.coalesce(tables.outbox.c.unsettled_since, literal(now, UtcDateTime())),
                    )
                )
            return leased

    def mark_notice_sent(self, notice_id: int, now: datetime) -> None:
        """Record that Slack accepted the notice; a notice already marked sent keeps its first time.

        Args:
            notice_id: the outbox item's id.
            now: when it was sent.

        Raises:
            StoreBusy: the database stayed locked.
            ValueError: `now` is naive.
        """
        _require_aware(now=now)
        # Whoever holds the lease: Slack accepted it, which is the truth whoever sent it.
        self._update_unsent_notice(notice_id, None, sent_at=now, lease=None, unsettled_since=None)

    def defer_notice(
        self,
        notice_id: int,
        retry_at: datetime,
        error: str,
        *,
        lease: str | None = None,
        unsettled_since: datetime | None = None,
        count_attempt: bool = True,
    ) -> bool:
        """Record a failed delivery; the notice is tried again at `retry_at`.

        Args:
            notice_id: the outbox item's id.
            retry_at: when to try again.
            error: why it failed (kept, shortened, for operators).
            lease: apply only while this lease still holds the notice; None: whoever holds it.
            unsettled_since: when an attempt that may have reached Slack began; None when none may have.
            count_attempt: False for a postponement that was no attempt (another call's rate limit).

        Returns:
            False when nothing was changed: sent, given up, or the lease lost.

        Raises:
            StoreBusy: the database stayed locked.
            ValueError: `retry_at` is naive.
        """
        _require_aware(retry_at=retry_at)
        values: dict[str, Any] = {
            "next_attempt_at": retry_at,
            "last_error": error[:_MAX_ERROR_CHARS],
            "lease": None,
            "unsettled_since": unsettled_since,
        }
        if count_attempt:
            values["attempts"] = tables.outbox.c.attempts + 1
        return self._update_unsent_notice(notice_id, lease, **values)

    def abandon_notice(self, notice_id: int, now: datetime, reason: str, *, lease: str | None = None) -> bool:
        """Give the notice up: it can never be delivered, or no longer means anything. It is not retried.

        Args:
            notice_id: the outbox item's id.
            now: the current time.
            reason: why (kept in `last_error` for operators).
            lease: apply only while this lease still holds the notice; None: whoever holds it.

        Returns:
            False when nothing was changed: sent, given up already, or the lease lost.

        Raises:
            StoreBusy: the database stayed locked.
            ValueError: `now` is naive.
        """
        _require_aware(now=now)
        return self._update_unsent_notice(
            notice_id, lease, abandoned_at=now, last_error=reason[:_MAX_ERROR_CHARS], lease=None, unsettled_since=None
        )

    def _update_unsent_notice(self, notice_id: int, held_by: str | None, **values: Any) -> bool:
        # Only while open: a notice already sent or given up keeps its record.
        condition = and_(tables.outbox.c.id == notice_id, _OPEN_NOTICE)
        if held_by is not None:
            condition = and_(condition, tables.outbox.c.lease == held_by)
        with self._writing() as write:
            write.claims_written = []  # the outbox only
            result = write.connection.execute(update(tables.outbox).where(condition).values(**values))
            return bool(result.rowcount)

    # -- Audit log ----------------------------------------------------------------------------------

    def events(self, claim_id: int | None = None) -> list[ClaimEvent]:
        """The audit log (of one claim, or all), oldest first.

        Args:
            claim_id: only this claim's events; None for all.

        Returns:
            The events in the order they were written.
        """
        query = select(*tables.claim_events.c).order_by(tables.claim_events.c.id)
        if claim_id is not None:
            query = query.where(tables.claim_events.c.claim_id == claim_id)
        with self._reading() as connection:
            return [
                ClaimEvent(
                    claim_id=row.claim_id,
                    kind=EventKind(row.kind),
                    actor_id=row.actor_id,
                    at=row.at,
                    detail=json.loads(row.detail),
                )
                for row in connection.execute(query)
            ]

    # -- People -------------------------------------------------------------------------------------

    def people(self, user_ids: Collection[str]) -> dict[str, Person]:
        """The display names known for these users, by user ID; those never looked up are left out."""
        if not user_ids:
            return {}
        query = select(*tables.people.c).where(tables.people.c.user_id.in_(list(user_ids)))
        with self._reading() as connection:
            return {
                row.user_id: Person(row.user_id, row.display_name, row.updated_at) for row in connection.execute(query)
            }

    def save_person(self, person: Person) -> None:
        """Record (or replace) a user's display name.

        Raises:
            ValueError: `updated_at` is naive.
            StoreBusy: the database stayed locked.
        """
        _require_aware(updated_at=person.updated_at)
        row = {"user_id": person.user_id, "display_name": person.display_name, "updated_at": person.updated_at}
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(tables.people).values(row)
        # Upsert: two daemons looking the same person up at once must not collide.
        upsert = statement.on_conflict_do_update(
            index_elements=["user_id"],
            set_={"display_name": statement.excluded.display_name, "updated_at": statement.excluded.updated_at},
        )
        with self._writing() as write:
            write.connection.execute(upsert)

    # -- Snapshot of the hot reads ------------------------------------------------------------------

    @contextmanager
    def answering_from_memory(self) -> Iterator[bool]:
        """Whether the hot reads (`list_gpus`, `active_claims`, `claims_to_warn`, `claims_past_end`) can be
        answered now, from memory, with no database call that could wait.

        While it yields True, those reads in this context are served from the snapshot it found current,
        and any other database call raises, so the caller may make them on an event loop (issue 5: the
        thread hop cost a `/gpu status` half of its CPU under load). False on PostgreSQL, before the first
        load, after a commit (the reload is database work), or when the commit counter cannot be read at once.

        Raises:
            RuntimeError: (inside the block) a call that needs the database.
        """
        cached = self._cached
        if self._commits is None or cached is None or self._commits.value_now() != cached.version:
            yield False
            return
        token = _PINNED.set((self, cached))
        try:
            yield True
        finally:
            _PINNED.reset(token)

    def _snapshot(self) -> _Snapshot | None:
        """The GPUs and active claims as the database holds them now; None when not on a SQLite file.

        The counter is read before loading, so a commit that lands during the load makes the next call
        load again: a snapshot is never served after a commit it may have missed.
        """
        pinned = _PINNED.get()
        if pinned is not None and pinned[0] is self:
            return pinned[1]
        if self._commits is None:
            return None
        cached = self._cached
        if cached is not None and cached.version == self._commits.value():
            return cached
        # One thread loads, the others wait for its result: after a commit, every worker thread would
        # otherwise find the snapshot stale at once and load the same rows side by side (issue 5).
        with self._loading:
            version = self._commits.value()
            cached = self._cached
            if cached is not None and cached.version == version:
                return cached
            self._cached = self._load_snapshot(version)
            return self._cached

    def _load_snapshot(self, version: int) -> _Snapshot:
        # Called with `_loading` held, so the copies have one user at a time.
        with self._reading() as connection:
            gpu_rows = connection.execute(_PRESENT_GPUS).all()
            claim_rows = connection.execute(_ACTIVE_CLAIMS).all()
        self._gpu_copies = _copies(gpu_rows, self._gpu_copies, _to_gpu)
        self._claim_copies = _copies(claim_rows, self._claim_copies, _to_claim)
        gpus: dict[str, list[Gpu]] = {}
        for gpu in self._gpu_copies.values():
            gpus.setdefault(gpu.host, []).append(gpu)
        active = tuple(self._claim_copies.values())
        return _Snapshot(version, {host: tuple(listed) for host, listed in gpus.items()}, active)

    # -- Transactions -------------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[_Write]:
        # One transaction that may write: BEGIN IMMEDIATE on SQLite (see engine.py), committed on exit.
        self._refuse_if_pinned()
        self.check_file()
        with self._turn_to_write(), _locked_as_busy(), self._engine.connect() as connection:
            with connection.begin():
                start = self._snapshot_current_at_start(connection)
                write = _Write(connection)
                yield write
                self.check_file()  # once more before the commit confirms it: rolled back if the file went
            if start is not None and write.claims_written is not None:
                self._patch_snapshot(start, write.claims_written, connection)

    def _snapshot_current_at_start(self, connection: Connection) -> _WriteStart | None:
        """The snapshot, if it is the state this write transaction starts from, with the writer's data version.

        On SQLite this transaction holds the write lock, so no commit can land until it commits: the
        counter read now says exactly which state the transaction sees. A version that cannot be read
        costs the write nothing but the patch.
        """
        cached = self._cached
        if self._commits is None or cached is None:
            return None
        try:
            if self._commits.value() != cached.version:
                return None
            return _WriteStart(cached, _data_version(connection))
        except sqlite3.Error:
            return None

    def _patch_snapshot(self, start: _WriteStart, claims_written: Sequence[Claim], connection: Connection) -> None:
        """After a commit: apply this transaction's own changes to the snapshot it started from, instead of
        reloading everything (issue 5: a reload cost a claim or release 0.14-0.26 ms of its ~1 ms of CPU).

        Only when nothing else can have been committed meanwhile. The counter changes with every commit
        but not by one per commit, so it cannot tell ours from ours-and-another's. The writing connection
        can: its own data version changes only when *another* connection commits, so if it is unchanged
        after the counter was read, the counter's value is exactly the snapshot plus this transaction.
        Never raises: the transaction is committed, and its caller must hear that it was.
        """
        if self._commits is None:
            return
        try:
            version = self._commits.value()
            if _data_version(connection) != start.writer_version:
                return  # another commit landed: the next read reloads
        except sqlite3.Error:
            return  # e.g. SQLite's busy timeout on the read lock: the next read reloads
        with self._loading:
            if self._cached is start.snapshot:
                self._cached = _patched(start.snapshot, claims_written, version)

    @contextmanager
    def _turn_to_write(self) -> Iterator[None]:
        if self._writer_turn is None:
            yield
            return
        # As long as SQLite itself would wait for another process's lock, then "busy".
        if not self._writer_turn.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
            raise StoreBusy()
        try:
            yield
        finally:
            self._writer_turn.release()

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        self._refuse_if_pinned()
        with _locked_as_busy(), self._read_engine.begin() as connection:
            yield connection

    def _refuse_if_pinned(self) -> None:
        pinned = _PINNED.get()
        if pinned is not None and pinned[0] is self:
            raise RuntimeError("a database call inside answering_from_memory(), which promised none")


class _FileIdentity:
    """A SQLite file's device and inode when it was opened, to tell whether it is still there and the same."""

    def __init__(self, path: str, identity: tuple[int, int]) -> None:
        self._path = path
        self._identity = identity
        self._lost: StoreReplaced | None = None

    @classmethod
    def of(cls, engine: Engine) -> _FileIdentity | None:
        """The identity of `engine`'s SQLite file; None for another database or a file not there yet."""
        database = engine.url.database or ""
        if engine.dialect.name != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
            return None
        path = os.path.abspath(os.path.expanduser(database))
        try:
            stat = os.stat(path)
        except OSError:
            return None
        return cls(path, (stat.st_dev, stat.st_ino))

    def check(self) -> None:
        if self._lost is None:
            try:
                stat = os.stat(self._path)
            except FileNotFoundError:
                self._lost = StoreReplaced(self._path, "deleted")
            except OSError:
                return  # cannot tell (e.g. a directory not searchable for a moment): SQLite will say
            else:
                if (stat.st_dev, stat.st_ino) != self._identity:
                    self._lost = StoreReplaced(self._path, "replaced")
            if self._lost is not None:
                logger.error("the %s: refusing every change until gpubot is restarted", self._lost.status)
        if self._lost is not None:
            raise StoreReplaced(self._lost.path, self._lost.what)


@contextmanager
def _locked_as_busy() -> Iterator[None]:
    # SQLite gives up after its busy timeout; the person waiting in Slack gets "try again", not a trace.
    # A database that cannot be written (a file system remounted read-only, a full disk) gets a reply
    # that says so, instead of "Something went wrong" (issue 11).
    try:
        yield
    except OperationalError as exc:
        reason = str(exc.orig)
        if any(message in reason for message in _LOCKED_MESSAGES):
            raise StoreBusy() from exc
        if is_write_refusal(reason):
            raise StoreReadOnly(
                f"gpubot cannot write its claims database ({_plain_cause(reason)}); nothing was changed. "
                "Please tell the admin."
            ) from exc
        raise


def _plain_cause(reason: str) -> str:
    lowered = reason.lower()
    if "full" in lowered or "no space" in lowered:
        return "the disk is full"
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        return "it is read-only"
    return reason


def _event_values(
    claim_id: int, kind: EventKind, actor_id: str | None, at: datetime, detail: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "claim_id": claim_id,
        "kind": kind.value,
        "actor_id": actor_id,
        "at": at,
        "detail": json.dumps(detail or {}, sort_keys=True),
    }


def _notice_values(notice: Notice, now: datetime) -> dict[str, Any]:
    return {
        "kind": notice.kind.value,
        "user_id": notice.user_id,
        "claim_id": notice.claim_id,
        "actor_id": notice.actor_id,
        "created_at": now,
        "next_attempt_at": now,
        "attempts": 0,
    }


def _by_end(claim: Claim) -> tuple[datetime, int]:
    return claim.ends_at, claim.id


def _in_snapshot_order(claim: Claim) -> tuple[str, int, int]:
    # As _ACTIVE_CLAIMS orders them (SQLite compares text by its UTF-8 bytes, as Python compares str).
    return claim.host, claim.gpu_index, claim.id


def _patched(snapshot: _Snapshot, claims_written: Sequence[Claim], version: int) -> _Snapshot:
    """`snapshot` with `claims_written` applied: each replaces its old self, and stays only while active."""
    if not claims_written:
        return _Snapshot(version, snapshot.gpus, snapshot.active)
    written = {claim.id for claim in claims_written}
    active = [claim for claim in snapshot.active if claim.id not in written]
    active.extend(claim for claim in claims_written if claim.status is ClaimStatus.ACTIVE)
    active.sort(key=_in_snapshot_order)
    return _Snapshot(version, snapshot.gpus, tuple(active))


def _data_version(connection: Connection) -> int:
    # On the DBAPI connection itself: through SQLAlchemy, a statement after the commit would begin a
    # transaction (BEGIN IMMEDIATE, see engine.py). The driver is in autocommit, so this begins none.
    row = connection.connection.driver_connection.execute("PRAGMA data_version").fetchone()  # type: ignore[union-attr]
    return int(row[0])


def _copies(
    rows: Sequence[AnyRow], previous: dict[tuple[Any, ...], T], convert: Callable[[AnyRow], T]
) -> dict[tuple[Any, ...], T]:
    """Each row's object, in the rows' order: the one made from an identical row last time, else a new one."""
    copies = {}
    for row in rows:
        key = tuple(row)
        known = previous.get(key)
        copies[key] = known if known is not None else convert(row)
    return copies


def _to_gpu(row: AnyRow) -> Gpu:
    host, uuid, index, name = row  # by position: a Row's `index` is tuple.index
    return Gpu(host=host, uuid=uuid, index=index, name=name)


def _to_claim(row: AnyRow) -> Claim:
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
    )


def _require_aware(**times: datetime) -> None:
    # Checked here as well as in UtcDateTime so that the caller gets a plain ValueError naming the
    # argument, not SQLAlchemy's StatementError wrapper.
    for name, value in times.items():
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be an aware datetime, got naive {value.isoformat()}")


def _to_outbox_item(row: AnyRow) -> OutboxItem:
    # A row of _NOTICE_WITH_CLAIM: the notice's columns labelled, then the claim's.
    notice = Notice(
        kind=NoticeKind(row.notice_kind), user_id=row.notice_user_id, claim_id=row.id, actor_id=row.notice_actor_id
    )
    return OutboxItem(
        id=row.notice_id,
        notice=notice,
        claim=_to_claim(row),
        attempts=row.notice_attempts,
        created_at=row.notice_created_at,
        unsettled_since=row.notice_unsettled_since,
    )


def _same_second(first: datetime, second: datetime) -> bool:
    # Buttons carry times as whole epoch seconds.
    return int(first.timestamp()) == int(second.timestamp())
