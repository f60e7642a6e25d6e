"""`SqlClaimStore` serves GPUs and active claims from memory on SQLite, and never serves them stale.

The snapshot is reloaded whenever SQLite's data version says anyone committed anything: another store
in this process, another process, or any other SQLite client (issue 5). After a store's own write it is
patched with what the write changed instead, but only when no other commit can have slipped in.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from gpubot.core.models import ClaimStatus, EventKind, Gpu, NewClaim, Notice, NoticeKind
from gpubot.storage import change_signal
from gpubot.storage.change_signal import SqliteDataVersion
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
HOST = "node1"
GPUS = [Gpu(HOST, f"GPU-{index}", index, "NVIDIA H100") for index in range(4)]


def _claim(store: SqlClaimStore, gpu: Gpu, user: str = "U_ALICE", hours: float = 1) -> int:
    [claim] = store.create_claims([NewClaim(gpu, user, "training", NOW, NOW + timedelta(hours=hours))])
    return claim.id


def test_a_claim_made_through_another_store_is_seen_at_once(sqlite_engine: Engine, sqlite_url: str) -> None:
    reader = SqlClaimStore(sqlite_engine)
    other_engine = make_engine(sqlite_url)  # a pool of its own, as another process would have
    try:
        writer = SqlClaimStore(other_engine)
        writer.sync_gpus(HOST, GPUS, NOW)
        assert [gpu.index for gpu in reader.list_gpus(HOST)] == [0, 1, 2, 3]
        assert reader.active_claims(HOST) == []

        claim_id = _claim(writer, GPUS[2])
        assert [claim.id for claim in reader.active_claims(HOST)] == [claim_id]
        assert [claim.id for claim in reader.claims_past_end(NOW + timedelta(hours=2))] == [claim_id]

        writer.end_claim(claim_id, ClaimStatus.RELEASED, EventKind.RELEASED, "U_ALICE", NOW)
        assert reader.active_claims(HOST) == []
        writer.sync_gpus(HOST, GPUS[:2], NOW)
        assert [gpu.index for gpu in reader.list_gpus(HOST)] == [0, 1]
    finally:
        other_engine.dispose()


def test_a_change_by_any_sqlite_client_is_seen(sqlite_engine: Engine, sqlite_url: str) -> None:
    store = SqlClaimStore(sqlite_engine)
    store.sync_gpus(HOST, GPUS, NOW)
    claim_id = _claim(store, GPUS[0])
    assert store.claims_to_warn(NOW, timedelta(hours=2))[0].id == claim_id

    # An operator's sqlite3 shell, say: no SQLAlchemy, no gpubot.
    outsider = sqlite3.connect(Path(sqlite_url.removeprefix("sqlite:///")), isolation_level=None)
    try:
        outsider.execute("UPDATE claims SET warned_at = ends_at WHERE id = ?", (claim_id,))
    finally:
        outsider.close()
    assert store.claims_to_warn(NOW, timedelta(hours=2)) == []
    [claim] = store.active_claims(HOST)
    assert claim.warned_at == claim.ends_at


def test_the_derived_queries_keep_their_order(sqlite_engine: Engine) -> None:
    store = SqlClaimStore(sqlite_engine)
    store.sync_gpus(HOST, GPUS, NOW)
    late, early = _claim(store, GPUS[0], hours=3), _claim(store, GPUS[3], hours=1)
    assert [claim.gpu_index for claim in store.active_claims()] == [0, 3]
    assert [claim.id for claim in store.claims_past_end(NOW + timedelta(hours=4))] == [early, late]
    assert [claim.id for claim in store.claims_to_warn(NOW, timedelta(hours=4))] == [early, late]


def test_threads_reading_beside_a_writer_never_see_a_released_claim_as_held(sqlite_engine: Engine) -> None:
    store = SqlClaimStore(sqlite_engine)
    store.sync_gpus(HOST, GPUS, NOW)
    stale: list[int] = []
    released: list[int] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            released_before = set(released)
            held = {claim.id for claim in store.active_claims(HOST)}
            stale.extend(held & released_before)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        for _ in range(30):
            claim_id = _claim(store, GPUS[1])
            store.end_claim(claim_id, ClaimStatus.RELEASED, EventKind.RELEASED, "U_ALICE", NOW)
            released.append(claim_id)
    finally:
        done.set()
        for reader in readers:
            reader.join()
    assert stale == []


def test_only_a_sqlite_file_gets_a_change_signal(tmp_path: Path) -> None:
    memory = make_engine("sqlite://")
    try:
        assert change_signal.change_signal(memory) is None
    finally:
        memory.dispose()
    file = make_engine(f"sqlite:///{tmp_path / 'gpubot.db'}")
    try:
        signal = change_signal.change_signal(file)
        assert signal is not None
        first = signal.version()
        assert signal.version() == first  # nothing committed in between
        with file.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE touched (id INTEGER)")
        assert signal.version() != first
    finally:
        file.dispose()


# -- answering_from_memory: the reads an event loop may make -----------------------------------------


def test_reads_come_from_memory_only_while_the_snapshot_is_current(sqlite_engine: Engine, sqlite_url: str) -> None:
    store = SqlClaimStore(sqlite_engine)
    store.sync_gpus(HOST, GPUS, NOW)
    with store.answering_from_memory() as in_memory:
        assert not in_memory  # nothing loaded yet: loading is database work
    held = _claim(store, GPUS[0])
    assert [claim.id for claim in store.active_claims(HOST)] == [held]  # loads the snapshot
    with store.answering_from_memory() as in_memory:
        assert in_memory
        assert [claim.id for claim in store.active_claims(HOST)] == [held]
        assert [gpu.index for gpu in store.list_gpus(HOST)] == [0, 1, 2, 3]

    # A commit from anywhere (here another pool, as another process would) makes the next read a database read.
    other_engine = make_engine(sqlite_url)
    try:
        SqlClaimStore(other_engine).end_claim(held, ClaimStatus.RELEASED, EventKind.RELEASED, "U_ALICE", NOW)
    finally:
        other_engine.dispose()
    with store.answering_from_memory() as in_memory:
        assert not in_memory
    assert store.active_claims(HOST) == []
    with store.answering_from_memory() as in_memory:
        assert in_memory
        assert store.active_claims(HOST) == []


def test_inside_answering_from_memory_the_pinned_snapshot_is_served_and_nothing_else(sqlite_engine: Engine) -> None:
    store = SqlClaimStore(sqlite_engine)
    store.sync_gpus(HOST, GPUS, NOW)
    store.list_gpus(HOST)
    with store.answering_from_memory() as in_memory:
        assert in_memory
        # A commit by a thread meanwhile does not turn this read into a reload on the caller's thread.
        writer = threading.Thread(target=_claim, args=(SqlClaimStore(sqlite_engine), GPUS[1]))
        writer.start()
        writer.join()
        assert store.active_claims(HOST) == []
        with pytest.raises(RuntimeError, match="answering_from_memory"):
            store.get_claim(1)
        with pytest.raises(RuntimeError, match="answering_from_memory"):
            _claim(store, GPUS[2])
    assert [claim.gpu_index for claim in store.active_claims(HOST)] == [1]  # and outside, the truth again
    assert store.get_claim(1) is not None


def test_no_memory_answers_while_the_data_version_is_busy(sqlite_engine: Engine) -> None:
    store = SqlClaimStore(sqlite_engine)
    store.sync_gpus(HOST, GPUS, NOW)
    store.list_gpus(HOST)
    signal = store._reads._signal
    assert isinstance(signal, SqliteDataVersion)
    with signal._lock:  # another thread is reading the version: the caller must not wait for it
        assert signal.version_now() is None
        with store.answering_from_memory() as in_memory:
            assert not in_memory
    assert signal.version_now() == signal.version()


def test_a_database_without_a_commit_counter_never_answers_from_memory() -> None:
    engine = make_engine("sqlite://")
    try:
        store = SqlClaimStore(engine)
        with store.answering_from_memory() as in_memory:
            assert not in_memory
    finally:
        engine.dispose()


# -- after the store's own writes --------------------------------------------------------------------


@pytest.fixture
def loaded_store(sqlite_engine: Engine) -> SqlClaimStore:
    """A store on the test file with its GPUs synced and its snapshot loaded."""
    store = SqlClaimStore(sqlite_engine)
    store.sync_gpus(HOST, GPUS, NOW)
    store.list_gpus(HOST)
    return store


@pytest.fixture
def other_engine(sqlite_url: str) -> Iterator[Engine]:
    """A pool of its own on the same file, as another process would have."""
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@contextmanager
def _statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements `engine` sends while the block runs."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_after_its_own_writes_a_store_answers_from_memory(
    sqlite_engine: Engine, loaded_store: SqlClaimStore, other_engine: Engine
) -> None:
    store = loaded_store
    writes = [
        lambda: _claim(store, GPUS[3]),
        lambda: _claim(store, GPUS[1], user="U_BOB"),
        lambda: store.extend_claim(1, NOW + timedelta(hours=5), "U_ALICE", NOW),
        lambda: store.mark_warned(2, NOW, Notice(NoticeKind.EXPIRY_WARNING, "U_BOB", 2)),
        lambda: store.end_claim(1, ClaimStatus.RELEASED, EventKind.RELEASED, "U_ALICE", NOW),
    ]
    for write in writes:
        write()
        with _statements(sqlite_engine) as sent:
            held = store.active_claims()
            gpus = store.list_gpus(HOST)
        assert sent == []  # no reload: the write's own changes were applied to the snapshot
        with store.answering_from_memory() as in_memory:
            assert in_memory
        fresh = SqlClaimStore(other_engine)  # what the database holds, read anew
        assert held == fresh.active_claims()
        assert gpus == fresh.list_gpus(HOST)
    [bob] = store.active_claims()
    assert (bob.user_id, bob.warned_at) == ("U_BOB", NOW)


def test_a_commit_landing_right_after_the_stores_own_is_not_missed(
    sqlite_engine: Engine, loaded_store: SqlClaimStore, other_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = loaded_store
    interloper = SqlClaimStore(other_engine)
    dialect = sqlite_engine.dialect
    commit = dialect.do_commit
    interloped: list[int] = []

    def commit_then_interlope(dbapi_connection: Any) -> None:
        commit(dbapi_connection)
        if not interloped:  # once, right after the store's commit and before it looks at anything again
            interloped.append(_claim(interloper, GPUS[2], user="U_CAROL"))

    monkeypatch.setattr(dialect, "do_commit", commit_then_interlope)
    mine = _claim(store, GPUS[0])
    assert interloped == [2]
    assert [(claim.id, claim.user_id) for claim in store.active_claims()] == [(mine, "U_ALICE"), (2, "U_CAROL")]


def test_a_commit_between_the_snapshot_and_the_stores_write_is_not_missed(
    loaded_store: SqlClaimStore, other_engine: Engine
) -> None:
    theirs = _claim(SqlClaimStore(other_engine), GPUS[3], user="U_CAROL")
    mine = _claim(loaded_store, GPUS[0])  # starts from a state the snapshot does not hold
    assert [claim.id for claim in loaded_store.active_claims()] == [mine, theirs]


def test_reads_after_any_mix_of_writes_match_the_database(sqlite_engine: Engine, other_engine: Engine) -> None:
    gpus = [Gpu(host, f"GPU-{host}-{index}", index, "NVIDIA H100") for host in ("b-node", "a-node") for index in (3, 1)]
    store = SqlClaimStore(sqlite_engine)
    for host in ("a-node", "b-node"):
        store.sync_gpus(host, [gpu for gpu in gpus if gpu.host == host], NOW)
    rng = random.Random(5)
    outsider = SqlClaimStore(other_engine)  # commits now and then, as a second daemon would
    for step in range(150):
        writer = outsider if rng.random() < 0.2 else store
        held = {claim.gpu_uuid: claim for claim in store.active_claims()}
        gpu = rng.choice(gpus)
        claim = held.get(gpu.uuid)
        at = NOW + timedelta(minutes=step)
        if claim is None:
            _claim(writer, gpu, user=rng.choice(["U_ALICE", "U_BOB"]))
        elif rng.random() < 0.4:
            writer.end_claim(
                claim.id, rng.choice([ClaimStatus.RELEASED, ClaimStatus.EXPIRED]), EventKind.RELEASED, None, at
            )
        elif rng.random() < 0.5:
            writer.extend_claim(claim.id, claim.ends_at + timedelta(minutes=30), claim.user_id, at)
        else:
            writer.mark_warned(claim.id, at, Notice(NoticeKind.EXPIRY_WARNING, claim.user_id, claim.id))
        assert store.active_claims() == SqlClaimStore(other_engine).active_claims(), f"step {step}"


def test_a_write_that_cannot_read_the_data_version_after_its_commit_still_succeeds(
    loaded_store: SqlClaimStore, other_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_data_version = change_signal._data_version

    def locked_after_commit(connection: Any) -> int:
        if not connection.in_transaction():
            raise sqlite3.OperationalError("database is locked")
        return read_data_version(connection)

    monkeypatch.setattr(change_signal, "_data_version", locked_after_commit)
    mine = _claim(loaded_store, GPUS[0])  # committed: the caller is told so, not "busy"
    _claim(SqlClaimStore(other_engine), GPUS[1], user="U_BOB")
    assert [claim.id for claim in loaded_store.active_claims()] == [mine, mine + 1]
