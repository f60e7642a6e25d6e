"""Test doubles for the core's ports. Product fakes (the fake GPU backend) live in src/."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from gpubot.core.errors import AlreadyHeld, ClaimChanged, ClaimNotActive, HostNameTaken, StoreBusy
from gpubot.core.mig import conflicting_claim
from gpubot.core.models import (
    Claim,
    ClaimStatus,
    ClaimUsage,
    EventKind,
    Gpu,
    HomeOpen,
    HostReport,
    HostRole,
    HostSample,
    NewClaim,
    Notice,
    NoticeKind,
    OutboxItem,
    Person,
    ProcessIdentity,
)
from gpubot.core.registry import NameHold, may_take
from gpubot.core.usage_report import UsageFigures, UsageFilter, UsageReports

# The process an in-memory store registers host names as, unless told otherwise.
THIS_PROCESS = ProcessIdentity(machine="test-machine", pid=os.getpid(), boot_id="test-boot")


@dataclass(frozen=True)
class ClaimEvent:
    """One row of the audit log, as tests read it (gpubot itself only writes the log)."""

    claim_id: int
    kind: EventKind
    actor_id: str | None
    at: datetime
    detail: dict[str, str] = field(default_factory=dict)


class FakeClock:
    """A settable clock: tests move time forward instead of sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when


@dataclass
class _OutboxRecord:
    id: int
    notice: Notice
    created_at: datetime
    next_attempt_at: datetime
    attempts: int = 0
    last_error: str | None = None
    sent_at: datetime | None = None
    lease: str | None = None
    unsettled_since: datetime | None = None
    abandoned_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.sent_at is None and self.abandoned_at is None


@dataclass
class _HostRecord:
    role: HostRole
    instance: str | None
    holder: str
    process: ProcessIdentity
    last_report_at: datetime
    sample: HostSample | None = None


class InMemoryFleetStore:
    """A dict-based `FleetStore`, held to `SqlClaimStore`'s contract by tests/storage/test_fleet_store.py.

    Args:
        process: the process it registers names as.
        pid_alive: whether a PID of that process's machine runs (default: none but its own).
    """

    def __init__(
        self, *, process: ProcessIdentity = THIS_PROCESS, pid_alive: Callable[[int], bool] | None = None
    ) -> None:
        self._fleet_lock = threading.Lock()
        self._hosts: dict[str, _HostRecord] = {}
        self._process = process
        self._pid_alive = pid_alive if pid_alive is not None else (lambda pid: pid == process.pid)

    def seen_from(self, process: ProcessIdentity, pid_alive: Callable[[int], bool] | None = None) -> InMemoryFleetStore:
        """The same hosts as another process would register them: for tests of two processes on one database."""
        other = InMemoryFleetStore(process=process, pid_alive=pid_alive)
        other._fleet_lock, other._hosts = self._fleet_lock, self._hosts
        return other

    def register_host(
        self, name: str, role: HostRole, instance: str, holder: str, now: datetime, timeout: timedelta
    ) -> None:
        _require_aware(now=now)
        with self._fleet_lock:
            held = self._hosts.get(name)
            hold = None if held is None else NameHold(held.instance, held.process, held.last_report_at)
            if held is not None and not may_take(hold, self._process, _utc(now), timeout, self._pid_alive):
                raise HostNameTaken(name, held.holder, held.last_report_at)
            sample = held.sample if held is not None else None
            self._hosts[name] = _HostRecord(role, instance, holder, self._process, _utc(now), sample)

    def report(self, name: str, instance: str, sample: HostSample | None, now: datetime, usage: object = None) -> bool:
        # Usage is counted by the SQL store only (tests/storage/test_usage_store.py).
        _require_aware(now=now)
        with self._fleet_lock:
            held = self._hosts.get(name)
            if held is None or held.instance != instance:
                return False
            held.last_report_at = _utc(now)
            held.sample = sample
            return True

    def release_host(self, name: str, instance: str) -> None:
        with self._fleet_lock:
            held = self._hosts.get(name)
            if held is not None and held.instance == instance:
                held.instance = None

    def hosts(self) -> list[HostReport]:
        with self._fleet_lock:
            return [
                HostReport(
                    name,
                    held.role,
                    held.last_report_at,
                    held.sample,
                    held.process if held.instance is not None else None,
                )
                for name, held in sorted(self._hosts.items())
            ]


class InMemoryClaimStore(InMemoryFleetStore):
    """A dict-based `ClaimStore` (and `FleetStore`) for unit tests, held to `SqlClaimStore`'s contract.

    tests/storage/test_claim_store.py runs the same tests against both, so behaviour the core relies on
    (conflicts naming the holder, conditional updates, outbox rows, window edges, UTC times) cannot drift.
    One lock makes each method atomic, as one transaction is in the real store.
    """

    def __init__(
        self, *, process: ProcessIdentity = THIS_PROCESS, pid_alive: Callable[[int], bool] | None = None
    ) -> None:
        super().__init__(process=process, pid_alive=pid_alive)
        self._lock = threading.RLock()  # lease_notices reuses pending_notices under the lock
        self._gpus: dict[tuple[str, str], tuple[Gpu, bool]] = {}
        self._claims: dict[int, Claim] = {}
        self._events: list[ClaimEvent] = []
        self._outbox: dict[int, _OutboxRecord] = {}
        self._people: dict[str, Person] = {}
        self._handled_events: dict[str, datetime] = {}
        self._home_viewers: dict[str, datetime] = {}
        self._next_claim_id = 1
        self._next_notice_id = 1
        # FleetStore: each host's report, and the instance that holds its name (None: released).
        self._hosts: dict[str, tuple[HostReport, str | None]] = {}

    def sync_gpus(self, host: str, gpus: Sequence[Gpu], now: datetime) -> None:
        _require_aware(now=now)
        if any(gpu.host != host for gpu in gpus):
            raise ValueError(f"every GPU synced for {host!r} must name that host")
        uuids = [gpu.uuid for gpu in gpus]
        if len(set(uuids)) != len(uuids):
            raise ValueError("a GPU UUID appears twice in one sync")
        with self._lock:
            for key, (gpu, _present) in list(self._gpus.items()):
                if gpu.host == host and gpu.uuid not in uuids:
                    self._gpus[key] = (gpu, False)
            for gpu in gpus:
                self._gpus[(host, gpu.uuid)] = (gpu, True)

    def list_gpus(self, host: str | None = None) -> list[Gpu]:
        with self._lock:
            present = [
                gpu for gpu, is_present in self._gpus.values() if (host is None or gpu.host == host) and is_present
            ]
        return sorted(
            present, key=lambda gpu: (gpu.host, gpu.index, -1 if gpu.mig_index is None else gpu.mig_index, gpu.uuid)
        )

    def active_claims(self, host: str | None = None) -> list[Claim]:
        with self._lock:
            claims = [
                claim
                for claim in self._claims.values()
                if claim.status is ClaimStatus.ACTIVE and (host is None or claim.host == host)
            ]
        return sorted(
            claims,
            key=lambda c: (c.host, c.gpu_index, -1 if c.gpu_mig_index is None else c.gpu_mig_index, c.id),
        )

    def get_claim(self, claim_id: int) -> Claim | None:
        with self._lock:
            return self._claims.get(claim_id)

    def create_claims(self, new_claims: Sequence[NewClaim], *, confirm_by_dm: bool = False) -> list[Claim]:
        for new in new_claims:
            _require_aware(started_at=new.started_at, ends_at=new.ends_at)
        keys = [(new.gpu.host, new.gpu.uuid) for new in new_claims]
        if len(set(keys)) != len(keys):
            raise ValueError("two of the claims are for the same GPU")
        with self._lock:
            holders = {
                (claim.host, claim.gpu_uuid): claim
                for claim in self._claims.values()
                if claim.status is ClaimStatus.ACTIVE
            }
            for new in new_claims:
                holder = holders.get((new.gpu.host, new.gpu.uuid))
                if holder is not None:
                    raise AlreadyHeld(new.gpu.label, holder.user_id, holder.ends_at)
                # A MIG card's claim and its slices' claims exclude each other, as in the SQL store.
                related = conflicting_claim(new.gpu, holders.values())
                if related is not None:
                    raise AlreadyHeld(new.gpu.label, related.user_id, related.ends_at, related.label)
            created = []
            for new in new_claims:
                claim = Claim(
                    id=self._next_claim_id,
                    host=new.gpu.host,
                    gpu_uuid=new.gpu.uuid,
                    gpu_index=new.gpu.index,
                    gpu_mig_index=new.gpu.mig_index,
                    parent_gpu_uuid=new.gpu.parent_uuid,
                    user_id=new.user_id,
                    purpose=new.purpose,
                    started_at=_utc(new.started_at),
                    ends_at=_utc(new.ends_at),
                )
                self._next_claim_id += 1
                self._claims[claim.id] = claim
                self._events.append(ClaimEvent(claim.id, EventKind.CLAIMED, new.user_id, _utc(new.started_at)))
                if confirm_by_dm:
                    self._queue(Notice(NoticeKind.CLAIMED, new.user_id, claim.id), new.started_at)
                created.append(claim)
            return created

    def end_claim(
        self,
        claim_id: int,
        status: ClaimStatus,
        event: EventKind,
        actor_id: str | None,
        now: datetime,
        notice: Notice | None = None,
    ) -> Claim:
        if status is ClaimStatus.ACTIVE:
            raise ValueError("a claim cannot be ended into the active status")
        _require_aware(now=now)
        with self._lock:
            claim = self._active(claim_id)
            ended = replace(claim, status=status, ended_at=_utc(now), ended_by=actor_id)
            self._claims[claim_id] = ended
            self._events.append(ClaimEvent(claim_id, event, actor_id, _utc(now)))
            if notice is not None:
                self._queue(notice, now)
            return ended

    def extend_claim(
        self,
        claim_id: int,
        ends_at: datetime,
        actor_id: str,
        now: datetime,
        expected_ends_at: datetime | None = None,
    ) -> Claim:
        _require_aware(ends_at=ends_at, now=now)
        with self._lock:
            claim = self._active(claim_id)
            if expected_ends_at is not None and int(claim.ends_at.timestamp()) != int(expected_ends_at.timestamp()):
                raise ClaimChanged(claim_id, claim.ends_at)
            extended = replace(claim, ends_at=_utc(ends_at), warned_at=None)
            self._claims[claim_id] = extended
            detail = {"from": claim.ends_at.isoformat(), "to": _utc(ends_at).isoformat()}
            self._events.append(ClaimEvent(claim_id, EventKind.EXTENDED, actor_id, _utc(now), detail))
            return extended

    def claims_to_warn(self, now: datetime, warn_before: timedelta) -> list[Claim]:
        _require_aware(now=now)
        with self._lock:
            due = [
                claim
                for claim in self._claims.values()
                if claim.status is ClaimStatus.ACTIVE
                and claim.warned_at is None
                and now < claim.ends_at <= now + warn_before
            ]
        return sorted(due, key=lambda claim: (claim.ends_at, claim.id))

    def mark_warned(self, claim_id: int, now: datetime, notice: Notice) -> bool:
        _require_aware(now=now)
        with self._lock:
            claim = self._claims.get(claim_id)
            if claim is None or claim.status is not ClaimStatus.ACTIVE or claim.warned_at is not None:
                return False
            self._claims[claim_id] = replace(claim, warned_at=_utc(now))
            self._events.append(ClaimEvent(claim_id, EventKind.WARNED, None, _utc(now)))
            self._queue(notice, now)
            return True

    def claims_past_end(self, now: datetime) -> list[Claim]:
        _require_aware(now=now)
        with self._lock:
            due = [
                claim for claim in self._claims.values() if claim.status is ClaimStatus.ACTIVE and claim.ends_at <= now
            ]
        return sorted(due, key=lambda claim: (claim.ends_at, claim.id))

    def pending_notices(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """Unsent notices whose next attempt is due, oldest first: not in the port, for tests to inspect."""
        _require_aware(now=now)
        with self._lock:
            due = sorted(
                (item for item in self._outbox.values() if item.open and item.next_attempt_at <= now),
                key=lambda item: (item.created_at, item.id),
            )[:limit]
            return [
                OutboxItem(
                    id=item.id,
                    notice=item.notice,
                    claim=self._claims[item.notice.claim_id],
                    attempts=item.attempts,
                    created_at=item.created_at,
                    unsettled_since=item.unsettled_since,
                )
                for item in due
            ]

    def lease_notices(self, now: datetime, lease_until: datetime, limit: int = 50) -> list[OutboxItem]:
        _require_aware(now=now, lease_until=lease_until)
        token = uuid.uuid4().hex
        with self._lock:
            leased = [
                replace(item, lease=token, leased_until=_utc(lease_until)) for item in self.pending_notices(now, limit)
            ]
            for item in leased:
                record = self._outbox[item.id]
                record.next_attempt_at = _utc(lease_until)
                record.lease = token
                record.unsettled_since = record.unsettled_since or _utc(now)
            return leased

    def mark_notice_sent(self, notice_id: int, now: datetime) -> None:
        _require_aware(now=now)
        with self._lock:
            item = self._outbox.get(notice_id)
            if item is not None and item.open:
                item.sent_at = _utc(now)
                item.lease = item.unsettled_since = None

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
        _require_aware(retry_at=retry_at)
        with self._lock:
            item = self._held(notice_id, lease)
            if item is None:
                return False
            if count_attempt:
                item.attempts += 1
            item.next_attempt_at = _utc(retry_at)
            item.last_error = error
            item.lease = None
            item.unsettled_since = _utc(unsettled_since) if unsettled_since is not None else None
            return True

    def abandon_notice(self, notice_id: int, now: datetime, reason: str, *, lease: str | None = None) -> bool:
        _require_aware(now=now)
        with self._lock:
            item = self._held(notice_id, lease)
            if item is None:
                return False
            item.abandoned_at = _utc(now)
            item.last_error = reason
            item.lease = item.unsettled_since = None
            return True

    def notice_record(self, notice_id: int) -> _OutboxRecord:
        """The stored row, for tests that look at what is not in the port."""
        with self._lock:
            return replace(self._outbox[notice_id])

    def _held(self, notice_id: int, lease: str | None) -> _OutboxRecord | None:
        item = self._outbox.get(notice_id)
        if item is None or not item.open or (lease is not None and item.lease != lease):
            return None
        return item

    def events(self, claim_id: int | None = None) -> list[ClaimEvent]:
        with self._lock:
            return [event for event in self._events if claim_id is None or event.claim_id == claim_id]

    def people(self, user_ids: Collection[str]) -> dict[str, Person]:
        with self._lock:
            return {user_id: self._people[user_id] for user_id in user_ids if user_id in self._people}

    def catch_up(self) -> None:
        pass  # one process's memory: every read sees every write

    def usage_figures(
        self, since: datetime, until: datetime, where: UsageFilter, *, per_gpu: bool = False
    ) -> UsageFigures:
        # Usage is counted by the SQL store only; the fake has seen none.
        return UsageFigures()

    def claim_usage(self, claim_ids: Collection[int]) -> dict[int, ClaimUsage]:
        return {}

    def people_named(self, display_name: str) -> list[Person]:
        with self._lock:
            return [person for person in self._people.values() if person.display_name.lower() == display_name.lower()]

    def save_person(self, person: Person) -> None:
        _require_aware(updated_at=person.updated_at)
        with self._lock:
            self._people[person.user_id] = replace(person, updated_at=_utc(person.updated_at))

    def home_opened(
        self, opens: Sequence[HomeOpen], now: datetime, forget_before: datetime | None = None
    ) -> list[bool]:
        _require_aware(now=now, **({} if forget_before is None else {"forget_before": forget_before}))
        with self._lock:
            new = []
            for opened in opens:
                if opened.event_id is not None:
                    if opened.event_id in self._handled_events:
                        new.append(False)
                        continue
                    self._handled_events[opened.event_id] = _utc(now)
                self._home_viewers[opened.user_id] = _utc(now)
                new.append(True)
            if forget_before is not None:
                for kept in (self._handled_events, self._home_viewers):
                    for key in [key for key, at in kept.items() if at < forget_before]:
                        del kept[key]
            return new

    def home_viewers(self, user_ids: Collection[str], since: datetime) -> set[str]:
        _require_aware(since=since)
        with self._lock:
            return {
                user_id
                for user_id in user_ids
                if user_id in self._home_viewers and self._home_viewers[user_id] >= since
            }

    def _active(self, claim_id: int) -> Claim:
        claim = self._claims.get(claim_id)
        if claim is None or claim.status is not ClaimStatus.ACTIVE:
            raise ClaimNotActive(claim_id)
        return claim

    def _queue(self, notice: Notice, now: datetime) -> None:
        if notice.claim_id not in self._claims:
            # The real store's foreign key refuses this too.
            raise ValueError(f"notice for unknown claim {notice.claim_id}")
        self._outbox[self._next_notice_id] = _OutboxRecord(
            id=self._next_notice_id, notice=notice, created_at=_utc(now), next_attempt_at=_utc(now)
        )
        self._next_notice_id += 1


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def _require_aware(**times: datetime) -> None:
    for name, value in times.items():
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be an aware datetime, got naive {value.isoformat()}")


class FlakyStore:
    """A store whose named methods raise `error` for their next few calls: a locked or vanished database."""

    def __init__(self, inner: Any, error: Exception | None = None) -> None:
        self.inner = inner
        self._error = error if error is not None else StoreBusy()
        self._failures: dict[str, int] = {}
        self.failed_calls = 0

    def fail(self, method: str, times: int) -> None:
        self._failures[method] = times

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._failures.get(name, 0) > 0:
                self._failures[name] -= 1
                self.failed_calls += 1
                raise self._error
            return attribute(*args, **kwargs)

        return call


def usage_reports(store: InMemoryClaimStore, clock: FakeClock) -> UsageReports:
    """`/gpu usage` over a store, as the daemon wires it (UTC, everyone sees the team's figures)."""
    return UsageReports(store, store, store.list_gpus, clock, ZoneInfo("UTC"))
