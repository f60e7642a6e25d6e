"""`ReadSnapshot` on its own: a fake change signal and loader, no database (see test_read_snapshot.py for the store)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from gpubot.core.models import Claim, ClaimStatus, Gpu
from gpubot.storage.change_signal import WriteStart
from gpubot.storage.snapshot import ReadSnapshot, Snapshot

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
GPUS = [Gpu("b", "GPU-b0", 0, "H100"), Gpu("a", "GPU-a1", 1, "H100"), Gpu("b", "GPU-b1", 1, "H100")]
CONNECTION: Any = object()  # the signal fake never looks at it


def _claim(claim_id: int, host: str, index: int, hours: float, warned: bool = False) -> Claim:
    ends = NOW + timedelta(hours=hours)
    return Claim(
        claim_id, host, f"GPU-{host}{index}", index, "U_A", "x", NOW, ends, ClaimStatus.ACTIVE, ends if warned else None
    )


class FakeSignal:
    """A version anyone can bump; `other_commit_after_mine` plays a commit slipping in after the store's."""

    def __init__(self) -> None:
        self.value = 0
        self.readable_now = True
        self.blind = False  # cannot tell, as a lost PostgreSQL listen connection
        self.other_commit_after_mine = False
        self.commits_told: list[bool] = []

    def version(self) -> int | None:
        return None if self.blind else self.value

    def version_now(self) -> int | None:
        return self.value if self.readable_now and not self.blind else None

    def write_start(self, connection: Any) -> WriteStart | None:
        return WriteStart(self.value, mark=self.value)

    def version_after(self, connection: Any, start: WriteStart, notified: bool) -> int | None:
        self.commits_told.append(notified)
        self.value += 1  # the store's own commit
        if self.other_commit_after_mine:
            self.value += 1
            return None
        return self.value


class FakeLoad:
    def __init__(self, claims: Sequence[Claim] = ()) -> None:
        self.claims = list(claims)
        self.calls = 0

    def __call__(self) -> tuple[Sequence[Gpu], Sequence[Claim]]:
        self.calls += 1
        return GPUS, list(self.claims)


def test_the_hot_reads_over_a_snapshot() -> None:
    late, early, warned = _claim(1, "a", 1, 3), _claim(2, "b", 0, 1), _claim(3, "b", 1, 0.5, warned=True)
    snapshot = Snapshot.of(7, GPUS, [late, early, warned])
    assert snapshot.list_gpus("b") == [GPUS[0], GPUS[2]] and snapshot.list_gpus("c") == []
    assert snapshot.active_claims("b") == [early, warned] and snapshot.active_claims() == [late, early, warned]
    assert snapshot.claims_to_warn(NOW, timedelta(hours=4)) == [early, late]  # soonest first, warned left out
    assert snapshot.claims_to_warn(NOW + timedelta(hours=3), timedelta(hours=1)) == []  # ended is not "to warn"
    assert snapshot.claims_past_end(NOW + timedelta(hours=2)) == [warned, early]


def test_without_a_signal_every_read_loads_and_nothing_is_pinned() -> None:
    load = FakeLoad([_claim(1, "a", 1, 1)])
    reads = ReadSnapshot(load, None)
    reads.current()
    load.claims = []
    assert reads.current().active == () and load.calls == 2
    with reads.pinned() as in_memory:
        assert not in_memory
    assert reads.write_started(CONNECTION).start is None


def test_while_the_signal_cannot_tell_every_read_loads_and_nothing_is_pinned() -> None:
    signal, load = FakeSignal(), FakeLoad([_claim(1, "a", 1, 1)])
    reads = ReadSnapshot(load, signal)
    cached = reads.current()
    signal.blind = True
    load.claims = []
    assert reads.current().active == () and reads.current().version is None and load.calls == 3
    with reads.pinned() as in_memory:
        assert not in_memory
    signal.blind = False
    signal.value += 1  # as a reconnection counts
    assert reads.current() is not cached and reads.current().active == () and load.calls == 4
    with reads.pinned() as in_memory:
        assert in_memory


def test_a_snapshot_is_kept_until_the_version_moves() -> None:
    signal, load = FakeSignal(), FakeLoad()
    reads = ReadSnapshot(load, signal)
    first = reads.current()
    assert reads.current() is first and load.calls == 1
    signal.value += 1
    assert reads.current() is not first and load.calls == 2


def test_many_threads_finding_it_stale_load_it_once() -> None:
    signal = FakeSignal()
    gate = threading.Event()

    def slow_load() -> tuple[Sequence[Gpu], Sequence[Claim]]:
        gate.wait(5)
        time.sleep(0.01)
        load.calls += 1
        return GPUS, []

    load = FakeLoad()
    reads = ReadSnapshot(slow_load, signal)
    threads = [threading.Thread(target=reads.current) for _ in range(8)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join()
    assert load.calls == 1


def test_pinned_serves_one_snapshot_and_refuses_database_calls() -> None:
    signal = FakeSignal()
    reads = ReadSnapshot(FakeLoad(), signal)
    with reads.pinned() as in_memory:
        assert not in_memory  # nothing loaded yet
    loaded = reads.current()
    signal.readable_now = False
    with reads.pinned() as in_memory:
        assert not in_memory  # the version cannot be had without waiting
    signal.readable_now = True
    with reads.pinned() as in_memory:
        assert in_memory
        signal.value += 1  # a commit meanwhile: still the pinned one, no load on the caller's thread
        assert reads.current() is loaded
        with pytest.raises(RuntimeError, match="answering_from_memory"):
            reads.refuse_if_pinned()
    reads.refuse_if_pinned()
    assert reads.current() is not loaded


def test_the_stores_own_write_patches_the_snapshot() -> None:
    held, other = _claim(1, "a", 1, 1), _claim(2, "b", 0, 1)
    signal, load = FakeSignal(), FakeLoad([held, other])
    reads = ReadSnapshot(load, signal)
    reads.current()
    pending = reads.write_started(CONNECTION)
    released = replace(held, status=ClaimStatus.RELEASED)
    new = _claim(3, "a", 0, 2)
    reads.write_committed(pending, [released, new], CONNECTION, notified=True)
    assert reads.current().active == (new, other) and load.calls == 1


def test_a_write_that_cannot_say_what_it_changed_makes_the_next_read_reload() -> None:
    signal, load = FakeSignal(), FakeLoad()
    reads = ReadSnapshot(load, signal)
    reads.current()
    reads.write_committed(reads.write_started(CONNECTION), None, CONNECTION, notified=False)  # e.g. GPUs synced
    signal.value += 1  # its commit
    reads.current()
    assert load.calls == 2


def test_no_patch_when_another_commit_may_have_slipped_in() -> None:
    signal, load = FakeSignal(), FakeLoad([_claim(1, "a", 1, 1)])
    reads = ReadSnapshot(load, signal)
    reads.current()
    signal.other_commit_after_mine = True
    reads.write_committed(reads.write_started(CONNECTION), [], CONNECTION, notified=True)
    load.claims = []
    assert reads.current().active == () and load.calls == 2


def test_no_patch_for_a_write_that_started_from_another_state() -> None:
    signal, load = FakeSignal(), FakeLoad()
    reads = ReadSnapshot(load, signal)
    reads.current()
    signal.value += 1  # someone committed since the load
    pending = reads.write_started(CONNECTION)
    assert pending.snapshot is None
    reads.write_committed(pending, [_claim(1, "a", 1, 1)], CONNECTION, notified=True)
    assert signal.commits_told == [True]  # no patch, but its own commit is counted all the same
    reads.current()
    assert load.calls == 2


def test_a_write_that_notified_nothing_and_cannot_patch_asks_the_signal_nothing() -> None:
    signal, load = FakeSignal(), FakeLoad()
    reads = ReadSnapshot(load, signal)
    reads.write_committed(reads.write_started(CONNECTION), [], CONNECTION, notified=False)  # nothing loaded yet
    assert signal.commits_told == []
