"""On PostgreSQL the read snapshot is kept current by LISTEN/NOTIFY, and is never served while blind or stale.

Every test runs on the local server (see tests/postgres.py). Another daemon is played by a second engine (a
pool of its own, as another process has); "fresh" reads go to the database through a third.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text

from gpubot.core.errors import GpubotError
from gpubot.core.models import Claim, ClaimStatus, EventKind, Gpu, NewClaim, Notice, NoticeKind
from gpubot.core.policy import ClaimPolicy
from gpubot.core.selection import GpuSelection
from gpubot.core.service import ClaimService
from gpubot.storage.change_signal import notify_claims, notify_telemetry
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.pg_notify import PgNotifications, start_listening
from gpubot.storage.tables import claims
from tests.fakes import FakeClock

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
HOST = "node1"
GPUS = [Gpu(HOST, f"GPU-{index}", index, "NVIDIA H100") for index in range(4)]
# What a notification may take to arrive on a loaded test machine; each wait ends as soon as it has.
ARRIVAL_S = 10.0


def _until(condition: Callable[[], bool], timeout_s: float = ARRIVAL_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)
    return True


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def other_engine(postgres_engine: Engine) -> Iterator[Engine]:
    """A pool of its own on the test database, as another daemon (or the host CLI) has."""
    engine = make_engine(_url(postgres_engine))
    yield engine
    engine.dispose()


@contextmanager
def _listening(engine: Engine, **retries: float) -> Iterator[PgNotifications]:
    notifications = PgNotifications(engine, **retries)
    notifications.start()
    try:
        assert notifications.wait_listening(ARRIVAL_S)
        yield notifications
    finally:
        notifications.close()


@pytest.fixture
def notifications(postgres_engine: Engine) -> Iterator[PgNotifications]:
    """A started listener on the test database, reconnecting quickly."""
    with _listening(postgres_engine, first_retry_s=0.02, longest_retry_s=0.2) as started:
        yield started


@pytest.fixture
def reader(postgres_engine: Engine, notifications: PgNotifications) -> SqlClaimStore:
    """A daemon's store: listening, its GPUs synced and its snapshot loaded."""
    store = SqlClaimStore(postgres_engine, notifications=notifications)
    store.sync_gpus(HOST, GPUS, NOW)
    store.list_gpus(HOST)
    return store


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


def _claim(store: SqlClaimStore, gpu: Gpu, user: str = "U_ALICE") -> Claim:
    [claim] = store.create_claims([NewClaim(gpu, user, "training", NOW, NOW + timedelta(hours=1))])
    return claim


def _sentinel(engine: Engine, notifications: PgNotifications) -> None:
    """Return once every notification committed before now has reached `notifications`.

    PostgreSQL delivers notifications in commit order; one sent now on the telemetry channel (which leaves the
    claims snapshot alone) arrives after all of them.
    """
    before = notifications.telemetry_version()
    assert before is not None
    with engine.begin() as connection:
        notify_telemetry(connection)
    assert _until(lambda: (notifications.telemetry_version() or before) > before)


def _fresh_claims(engine: Engine) -> dict[int, tuple[str, datetime, datetime | None]]:
    """Every claim in the database (active or not): status, end and warning, by id."""
    with engine.connect() as connection:
        rows = connection.execute(select(claims.c.id, claims.c.status, claims.c.ends_at, claims.c.warned_at)).all()
    return {row.id: (row.status, row.ends_at, row.warned_at) for row in rows}


# -- told of changes ---------------------------------------------------------------------------------


def test_a_write_through_another_store_is_seen_after_its_notification(
    reader: SqlClaimStore, postgres_engine: Engine, other_engine: Engine
) -> None:
    writer = SqlClaimStore(other_engine)  # no listener of its own, as the host CLI: it notifies all the same
    claim = _claim(writer, GPUS[2])
    assert _until(lambda: [held.id for held in reader.active_claims(HOST)] == [claim.id])
    with _statements(postgres_engine) as sent:
        assert [held.id for held in reader.active_claims(HOST)] == [claim.id]
    assert sent == []
    with reader.answering_from_memory() as in_memory:
        assert in_memory

    writer.end_claim(claim.id, ClaimStatus.RELEASED, EventKind.RELEASED, "U_ALICE", NOW)
    assert _until(lambda: reader.active_claims(HOST) == [])
    writer.sync_gpus(HOST, GPUS[:2], NOW)
    assert _until(lambda: [gpu.index for gpu in reader.list_gpus(HOST)] == [0, 1])


def test_a_status_read_costs_no_round_trip_while_nothing_changed(
    reader: SqlClaimStore, postgres_engine: Engine
) -> None:
    service = ClaimService(reader, FakeClock(NOW), ClaimPolicy(), host=HOST)
    with _statements(postgres_engine) as sent:
        for _ in range(20):
            service.dashboard(None)
    assert sent == []
    _claim(reader, GPUS[1])  # its own write patches the snapshot: no reload either, before or after its notification
    with _statements(postgres_engine) as sent:
        assert [row.claim is not None for row in service.dashboard(None).rows] == [False, True, False, False]
    assert sent == []
    with reader.answering_from_memory() as in_memory:
        assert in_memory


def test_a_commit_counted_between_the_stores_own_commit_and_its_return_is_not_missed(
    reader: SqlClaimStore,
    notifications: PgNotifications,
    postgres_engine: Engine,
    other_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    interloper = SqlClaimStore(other_engine)
    dialect = postgres_engine.dialect
    commit = dialect.do_commit
    interloped: list[Claim] = []
    before = notifications.version()
    assert before is not None

    def commit_then_interlope(dbapi_connection: Any) -> None:
        commit(dbapi_connection)
        if not interloped:  # once: another process commits, and both notifications arrive before ours returns
            interloped.append(_claim(interloper, GPUS[2], user="U_CAROL"))
            assert _until(lambda: (notifications.version() or 0) >= before + 2)

    monkeypatch.setattr(dialect, "do_commit", commit_then_interlope)
    mine = _claim(reader, GPUS[0])
    monkeypatch.undo()
    assert [claim.id for claim in reader.active_claims()] == [mine.id, interloped[0].id]


def test_a_rolled_back_write_notifies_nothing(
    reader: SqlClaimStore, notifications: PgNotifications, postgres_engine: Engine, other_engine: Engine
) -> None:
    version = notifications.version()
    with other_engine.connect() as connection, connection.begin() as transaction:
        notify_claims(connection)
        transaction.rollback()
    with pytest.raises(GpubotError):  # refused inside its transaction: rolled back
        SqlClaimStore(other_engine).end_claim(99, ClaimStatus.RELEASED, EventKind.RELEASED, "U_ALICE", NOW)
    _sentinel(other_engine, notifications)
    assert notifications.version() == version
    with _statements(postgres_engine) as sent:
        reader.active_claims()
    assert sent == []


def test_a_telemetry_notification_leaves_the_claims_snapshot_alone(
    reader: SqlClaimStore, notifications: PgNotifications, postgres_engine: Engine, other_engine: Engine
) -> None:
    heard = threading.Event()
    notifications.on_telemetry(heard.set)
    version = notifications.version()
    _sentinel(other_engine, notifications)  # a host's sample, as the telemetry writer sends it
    assert heard.wait(ARRIVAL_S)
    assert notifications.version() == version
    with _statements(postgres_engine) as sent:
        reader.active_claims()
        reader.list_gpus(HOST)
    assert sent == []


def test_a_daemon_listens_on_postgresql_only(sqlite_engine: Engine, postgres_engine: Engine) -> None:
    assert start_listening(sqlite_engine) is None
    notifications = start_listening(postgres_engine)
    assert notifications is not None
    try:
        assert notifications.wait_listening(ARRIVAL_S) and notifications.version() is not None
    finally:
        notifications.close()
    assert not notifications.listening() and notifications.version() is None
    notifications.close()  # twice: harmless


def test_a_store_refuses_a_listener_for_sqlite(sqlite_engine: Engine, postgres_engine: Engine) -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        PgNotifications(sqlite_engine)
    unstarted = PgNotifications(postgres_engine)
    try:
        with pytest.raises(ValueError, match="SQLite"):
            SqlClaimStore(sqlite_engine, notifications=unstarted)
    finally:
        unstarted.close()


# -- blind: the connection lost ----------------------------------------------------------------------


def _terminate_listener(engine: Engine) -> int:
    with engine.begin() as connection:
        return len(
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query LIKE 'LISTEN gpubot_%' AND pid <> pg_backend_pid()"
                )
            ).all()
        )


def test_a_lost_listen_connection_is_noticed_and_listened_again_with_one_reload(
    postgres_engine: Engine, other_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gpubot.storage.pg_notify")
    with _listening(postgres_engine, first_retry_s=0.3, longest_retry_s=1) as notifications:
        reader = SqlClaimStore(postgres_engine, notifications=notifications)
        reader.sync_gpus(HOST, GPUS, NOW)
        held = _claim(reader, GPUS[0])
        reader.active_claims(HOST)
        version = notifications.version()
        assert _terminate_listener(other_engine) == 1
        # Noticed: blind, or (on a slow machine) already back, which counts as a change.
        assert _until(lambda: notifications.version() != version)
        # Committed while it may be blind: no read may answer from what it held before.
        theirs = _claim(SqlClaimStore(other_engine), GPUS[3], user="U_BOB")
        assert [claim.id for claim in reader.active_claims(HOST)] == [held.id, theirs.id]
        assert notifications.wait_listening(ARRIVAL_S)
        _check_listening_again(reader, postgres_engine, [held.id, theirs.id])
    lost = [record for record in caplog.records if "not listening" in record.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.WARNING
    assert any("listening for database changes again" in record.getMessage() for record in caplog.records)


def _check_listening_again(reader: SqlClaimStore, postgres_engine: Engine, held: list[int]) -> None:
    reader.active_claims(HOST)  # the one reload a reconnection costs
    with _statements(postgres_engine) as sent:
        assert [claim.id for claim in reader.active_claims(HOST)] == held
    assert sent == []


def test_while_blind_every_read_goes_to_the_database(
    postgres_engine: Engine, other_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # Reconnecting only after a long wait: the blind spell lasts the whole test.
    with _listening(postgres_engine, first_retry_s=60, longest_retry_s=60) as notifications:
        store = SqlClaimStore(postgres_engine, notifications=notifications)
        store.sync_gpus(HOST, GPUS, NOW)
        store.list_gpus(HOST)
        assert _terminate_listener(other_engine) == 1
        assert _until(lambda: not notifications.listening())
        assert notifications.version() is None and notifications.telemetry_version() is None
        with store.answering_from_memory() as in_memory:
            assert not in_memory
        for gpu in GPUS[:3]:
            claim = _claim(SqlClaimStore(other_engine), gpu)
            with _statements(postgres_engine) as sent:
                assert claim.id in {held.id for held in store.active_claims(HOST)}
            assert sent != []
        _claim(store, GPUS[3])  # its own writes still commit
        assert len(store.active_claims(HOST)) == 4


def test_a_listener_that_cannot_connect_keeps_trying_and_says_so_once(
    postgres_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gpubot.storage.pg_notify")
    nowhere = make_engine(postgres_engine.url.set(port=1, query={"connect_timeout": "1"}).render_as_string(False))
    notifications = PgNotifications(nowhere, first_retry_s=0.01, longest_retry_s=0.02)
    notifications.start()
    try:
        assert not notifications.wait_listening(0.3)
        assert notifications.version() is None
    finally:
        notifications.close()
        nowhere.dispose()
    assert len([record for record in caplog.records if "not listening" in record.getMessage()]) == 1


# -- never stale -------------------------------------------------------------------------------------


_NEW_ENDS = itertools.count()


def _random_change(store: SqlClaimStore, rng: random.Random, at: datetime) -> None:
    held = {claim.gpu_uuid: claim for claim in store.active_claims()}
    gpu = rng.choice(GPUS)
    claim = held.get(gpu.uuid)
    try:
        if claim is None:
            _claim(store, gpu, user=rng.choice(["U_ALICE", "U_BOB"]))
        elif rng.random() < 0.4:
            store.end_claim(claim.id, ClaimStatus.RELEASED, EventKind.RELEASED, claim.user_id, at)
        elif rng.random() < 0.5:
            # A new end never seen before: a state the claim had once never comes back (see `_stale`).
            store.extend_claim(claim.id, NOW + timedelta(hours=2, seconds=next(_NEW_ENDS)), claim.user_id, at)
        else:
            store.mark_warned(claim.id, at, Notice(NoticeKind.EXPIRY_WARNING, claim.user_id, claim.id))
    except GpubotError:
        pass  # another writer got there first: refused, as it should be


def _stale(answer: list[Claim], before: dict[int, Any], after: dict[int, Any]) -> list[str]:
    """What in `answer` cannot be a state of the database between the fresh reads `before` and `after`.

    A claim's states never repeat (an ended claim stays ended, every extension sets a new end), so one in
    the same state before and after was in it throughout.
    """
    problems = []
    shown = {claim.id: (claim.status.value, claim.ends_at, claim.warned_at) for claim in answer}
    for claim_id in shown:
        if claim_id not in after:
            problems.append(f"claim {claim_id} shown but never committed")
        elif claim_id in before and before[claim_id][0] != "active":
            problems.append(f"claim {claim_id} shown held, ended before the read began")
    for claim_id, state in before.items():
        if state[0] == "active" and after.get(claim_id) == state and shown.get(claim_id) != state:
            problems.append(f"claim {claim_id} unchanged throughout, shown as {shown.get(claim_id)} not {state}")
    return problems


def test_no_stale_answer_among_concurrent_writers(
    reader: SqlClaimStore, notifications: PgNotifications, postgres_engine: Engine, other_engine: Engine
) -> None:
    fresh_engine = make_engine(_url(postgres_engine))
    done = threading.Event()
    failures: list[BaseException] = []
    with _listening(other_engine) as other_notifications:
        other_daemon = SqlClaimStore(other_engine, notifications=other_notifications)
        host_cli = SqlClaimStore(fresh_engine)
        writers = [(reader, 1), (other_daemon, 2), (host_cli, 3)]

        def write(store: SqlClaimStore, seed: int) -> None:
            rng = random.Random(seed)
            step = 0
            try:
                while not done.is_set():
                    step += 1
                    _random_change(store, rng, NOW + timedelta(minutes=step))
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=write, args=writer) for writer in writers]
        for thread in threads:
            thread.start()
        problems: list[str] = []
        try:
            for _ in range(60):
                for store, store_notifications in ((reader, notifications), (other_daemon, other_notifications)):
                    before = _fresh_claims(fresh_engine)
                    _sentinel(fresh_engine, store_notifications)
                    answer = store.active_claims()
                    problems.extend(_stale(answer, before, _fresh_claims(fresh_engine)))
        finally:
            done.set()
            for thread in threads:
                thread.join()
        assert failures == []
        assert problems == []
        # Quiet now: once every notification has arrived, both answer exactly what the database holds, from memory.
        for store, store_notifications in ((reader, notifications), (other_daemon, other_notifications)):
            _sentinel(fresh_engine, store_notifications)
            assert store.active_claims() == host_cli.active_claims()
            with store.answering_from_memory() as in_memory:
                assert in_memory
    fresh_engine.dispose()


class _SlowListener(PgNotifications):
    """A listener whose notifications each take a while to be counted, as on a busy daemon."""

    def _received(self, channel: str, payload: str) -> None:
        time.sleep(0.3)
        super()._received(channel, payload)


def test_a_change_through_another_daemon_is_seen_by_a_change_here_at_once(postgres_engine, other_engine):
    slow = _SlowListener(postgres_engine)
    slow.start()
    try:
        assert slow.wait_listening(ARRIVAL_S)
        here = SqlClaimStore(postgres_engine, notifications=slow)
        here.sync_gpus(HOST, GPUS, NOW)
        assert here.active_claims() == []  # loaded: from now on served from memory
        time.sleep(0.5)  # the sync's own notification counted
        claim = _claim(SqlClaimStore(other_engine), GPUS[0])

        stale = here.active_claims()
        here.catch_up()
        assert [c.id for c in here.active_claims()] == [claim.id]
        # Without the catch-up this read could not have known yet: the notification was still being counted.
        assert stale == []
    finally:
        slow.close()


def test_releasing_through_one_daemon_what_was_claimed_through_another_a_moment_ago(postgres_engine, other_engine):
    slow = _SlowListener(postgres_engine)
    slow.start()
    try:
        assert slow.wait_listening(ARRIVAL_S)
        clock = FakeClock(NOW)
        here = ClaimService(SqlClaimStore(postgres_engine, notifications=slow), clock, ClaimPolicy(), HOST)
        there = ClaimService(SqlClaimStore(other_engine), clock, ClaimPolicy(), HOST)
        SqlClaimStore(other_engine).sync_gpus(HOST, GPUS, NOW)
        time.sleep(0.5)
        here.dashboard(None)  # the snapshot loaded
        there.claim("U_ALICE", GpuSelection(labels=("1",)), "training", timedelta(hours=1))
        released = here.release("U_ALICE", GpuSelection(labels=("1",)))
        assert [claim.gpu_index for claim in released.released] == [1]
    finally:
        slow.close()
