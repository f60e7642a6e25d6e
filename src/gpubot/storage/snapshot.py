"""The read snapshot: every present GPU and every active claim, the data of the store's hot reads.

`Snapshot` is one state of them, with the hot reads as its methods, so each read has one definition.
`ReadSnapshot` decides which state a read gets: a cached one while its `ChangeSignal` says nothing was
committed since it was loaded, a fresh load otherwise, and, where there is no signal (or it cannot tell
now), a fresh load for every read. After the store's own write it patches the cached state with what the
write changed instead of reloading everything (see BENCHMARKS.md), but only when the signal confirms no
other commit slipped in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from gpubot.core.models import Claim, ClaimStatus, Gpu
from gpubot.storage.change_signal import ChangeSignal, WriteStart

# Loads the present GPUs (by host, index, MIG index and UUID) and the active claims (by host, GPU index, MIG
# index and id).
Load = Callable[[], tuple[Sequence[Gpu], Sequence[Claim]]]

# The snapshot `ReadSnapshot.pinned` pinned, with the `ReadSnapshot` it belongs to.
_PINNED: ContextVar[tuple[ReadSnapshot, Snapshot] | None] = ContextVar("gpubot_pinned_snapshot", default=None)


@dataclass(frozen=True)
class Snapshot:
    """Every present GPU and every active claim, as of one version of the database.

    Attributes:
        version: the `ChangeSignal` version it was loaded at; None where there is no signal.
        gpus: present GPUs per host, ordered by index and UUID.
        active: active claims of every host, ordered by host, GPU index and id.
    """

    version: int | None
    gpus: dict[str, tuple[Gpu, ...]]
    active: tuple[Claim, ...]

    @classmethod
    def of(cls, version: int | None, gpus: Sequence[Gpu], active: Sequence[Claim]) -> Snapshot:
        """A snapshot of `gpus` (ordered by host, index and UUID) and `active` (in `active`'s order)."""
        by_host: dict[str, list[Gpu]] = {}
        for gpu in gpus:
            by_host.setdefault(gpu.host, []).append(gpu)
        return cls(version, {host: tuple(listed) for host, listed in by_host.items()}, tuple(active))

    def list_gpus(self, host: str) -> list[Gpu]:
        """The GPUs present on `host`, ordered by index."""
        return list(self.gpus.get(host, ()))

    def active_claims(self, host: str | None = None) -> list[Claim]:
        """Active claims (of one host, or all), ordered by host and GPU index."""
        return [claim for claim in self.active if host is None or claim.host == host]

    def claims_to_warn(self, now: datetime, warn_before: timedelta) -> list[Claim]:
        """Unwarned active claims with `now < ends_at <= now + warn_before`, soonest end first."""
        due = now + warn_before
        return sorted((c for c in self.active if c.warned_at is None and now < c.ends_at <= due), key=_by_end)

    def claims_past_end(self, now: datetime) -> list[Claim]:
        """Active claims whose end is at or before `now`, earliest end first."""
        return sorted((c for c in self.active if c.ends_at <= now), key=_by_end)

    def with_written(self, claims_written: Sequence[Claim], version: int) -> Snapshot:
        """This snapshot at `version`, with each written claim replacing its old self while it is active."""
        if not claims_written:
            return Snapshot(version, self.gpus, self.active)
        written = {claim.id for claim in claims_written}
        active = [claim for claim in self.active if claim.id not in written]
        active.extend(claim for claim in claims_written if claim.status is ClaimStatus.ACTIVE)
        active.sort(key=_in_snapshot_order)
        return Snapshot(version, self.gpus, tuple(active))


@dataclass(frozen=True)
class PendingWrite:
    """A write transaction as its signal saw it start: after its commit, it may patch the snapshot.

    Attributes:
        snapshot: the cached snapshot it started from; None when it did not start from one.
        start: what the signal said at its start; None without a signal, or when it could not tell.
    """

    snapshot: Snapshot | None
    start: WriteStart | None

    @property
    def token(self) -> str:
        """What the transaction's change notification carries (see `WriteStart.token`)."""
        return "" if self.start is None else self.start.token


class ReadSnapshot:
    """Which `Snapshot` each read gets, loaded through `load` and kept current by `signal`.

    Args:
        load: reads the GPUs and active claims in one read transaction.
        signal: tells when anything was committed; None: every read loads afresh.
    """

    def __init__(self, load: Load, signal: ChangeSignal | None) -> None:
        self._load = load
        self._signal = signal
        self._cached: Snapshot | None = None
        self._loading = threading.Lock()

    def current(self) -> Snapshot:
        """The snapshot to answer from: the pinned one inside `pinned`, else the database as it is now.

        The version is read before loading, so a commit that lands during the load makes the next call
        load again: a snapshot is never served after a commit it may have missed.
        """
        pinned = _PINNED.get()
        if pinned is not None and pinned[0] is self:
            return pinned[1]
        signal = self._signal
        version = None if signal is None else signal.version()
        if signal is None or version is None:
            return Snapshot.of(None, *self._load())
        cached = self._cached
        if cached is not None and cached.version == version:
            return cached
        # One thread loads, the others wait for its result: after a commit, every worker thread would
        # otherwise find the snapshot stale at once and load the same rows side by side.
        with self._loading:
            version = signal.version()
            if version is None:
                return Snapshot.of(None, *self._load())
            cached = self._cached
            if cached is not None and cached.version == version:
                return cached
            self._cached = Snapshot.of(version, *self._load())
            return self._cached

    @contextmanager
    def pinned(self) -> Iterator[bool]:
        """Whether reads can be answered now, from memory, with no database call that could wait.

        While it yields True, `current` in this context returns the snapshot it found current, and `refuse_if_pinned`
        raises, so the caller may read on an event loop instead of hopping to a thread (see BENCHMARKS.md, 'What was
        changed to meet the targets'). False without a signal, before the first load, after a commit (the reload is
        database work), or when the signal cannot be read at once or cannot tell.
        """
        cached = self._cached
        if self._signal is None or cached is None or self._signal.version_now() != cached.version:
            yield False
            return
        token = _PINNED.set((self, cached))
        try:
            yield True
        finally:
            _PINNED.reset(token)

    def refuse_if_pinned(self) -> None:
        """Raise RuntimeError inside `pinned`, which promised that no database call would be made."""
        pinned = _PINNED.get()
        if pinned is not None and pinned[0] is self:
            raise RuntimeError("a database call inside answering_from_memory(), which promised none")

    def write_started(self, connection: Connection) -> PendingWrite:
        """Called inside a write transaction, before it changes anything.

        Returns:
            What `write_committed` needs: the snapshot the transaction starts from, if it starts from the
            cached one (otherwise only a reload can tell what it holds after the commit).
        """
        if self._signal is None:
            return PendingWrite(None, None)
        cached = self._cached
        start = self._signal.write_start(connection)
        if start is None or cached is None or start.version != cached.version:
            return PendingWrite(None, start)
        return PendingWrite(cached, start)

    def write_committed(
        self, pending: PendingWrite, claims_written: Sequence[Claim] | None, connection: Connection, notified: bool
    ) -> None:
        """After the commit: tell the signal, and apply the transaction's own changes to the snapshot it started from.

        Only when the signal confirms that nothing else was committed meanwhile; otherwise the next read
        reloads. Never raises: the transaction is committed, and its caller must hear that it was.

        Args:
            pending: from `write_started`.
            claims_written: every claim the transaction wrote, as it is now; None when it changed
                something else the snapshot holds (GPUs), or cannot say.
            connection: the writing connection, its transaction committed.
            notified: whether the transaction sent a change notification carrying `pending.token`.
        """
        if self._signal is None or pending.start is None:
            return
        patchable = pending.snapshot is not None and claims_written is not None
        if not patchable and not notified:
            return  # nothing to patch, and no commit of its own for the signal to count
        version = self._signal.version_after(connection, pending.start, notified)
        if version is None or pending.snapshot is None or claims_written is None:
            return
        with self._loading:
            if self._cached is pending.snapshot:
                self._cached = pending.snapshot.with_written(claims_written, version)


def _by_end(claim: Claim) -> tuple[datetime, int]:
    return claim.ends_at, claim.id


def _in_snapshot_order(claim: Claim) -> tuple[str, int, int, int]:
    # As the store's load orders them (SQLite compares text by its UTF-8 bytes, as Python compares str); a card's
    # claim (no MIG index) before its slices'.
    return claim.host, claim.gpu_index, -1 if claim.gpu_mig_index is None else claim.gpu_mig_index, claim.id
