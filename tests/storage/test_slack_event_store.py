"""The Slack events handled and the Home tabs open: one contract on every store, and one winner among daemons."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine

from gpubot.core.models import Gpu, HomeOpen
from gpubot.core.ports import SlackEventStore
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from tests.storage.conftest import needs_postgres

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
DAEMONS = 8


def opened(
    store: SlackEventStore, user_id: str, event_id: str | None, now: datetime, forget_before: datetime | None = None
) -> bool:
    """One Home open recorded alone: whether it was new."""
    [new] = store.home_opened([HomeOpen(user_id, event_id)], now, forget_before)
    return new


def test_an_event_is_recorded_once_and_its_retry_is_refused(store: SlackEventStore) -> None:
    assert opened(store, "U1", "Ev1", NOW) is True
    assert opened(store, "U1", "Ev1", NOW + timedelta(minutes=1)) is False  # Slack's retry
    assert opened(store, "U1", "Ev2", NOW + timedelta(minutes=2)) is True  # the next opening
    assert opened(store, "U2", "Ev1", NOW) is False  # the id decides, whoever it names


def test_an_event_without_an_id_is_always_recorded(store: SlackEventStore) -> None:
    assert opened(store, "U1", None, NOW) is True
    assert opened(store, "U1", None, NOW) is True


def test_an_event_id_as_long_as_the_column_is_kept(store: SlackEventStore) -> None:
    long_id = "E" * 255
    assert opened(store, "U1", long_id, NOW) is True
    assert opened(store, "U1", long_id, NOW) is False


def test_the_viewers_are_those_who_opened_their_home_since(store: SlackEventStore) -> None:
    opened(store, "U_OLD", "Ev1", NOW - timedelta(hours=2))
    opened(store, "U_NEW", "Ev2", NOW)
    opened(store, "U_AGAIN", "Ev3", NOW - timedelta(hours=2))
    opened(store, "U_AGAIN", "Ev4", NOW - timedelta(minutes=5))  # opened again: the newer time counts

    since = NOW - timedelta(hours=1)
    assert store.home_viewers({"U_OLD", "U_NEW", "U_AGAIN", "U_NEVER"}, since) == {"U_NEW", "U_AGAIN"}
    assert store.home_viewers({"U_NEW"}, NOW) == {"U_NEW"}  # at `since` counts
    assert store.home_viewers(set(), since) == set()


def test_a_retry_does_not_count_as_opening_again(store: SlackEventStore) -> None:
    opened(store, "U1", "Ev1", NOW - timedelta(hours=2))
    opened(store, "U1", "Ev1", NOW)  # refused: the opening stays two hours old
    assert store.home_viewers({"U1"}, NOW - timedelta(hours=1)) == set()


def test_old_events_and_viewers_are_forgotten_with_a_later_opening(store: SlackEventStore) -> None:
    opened(store, "U_OLD", "Ev_old", NOW - timedelta(days=2))
    opened(store, "U_KEPT", "Ev_kept", NOW - timedelta(hours=1))

    assert opened(store, "U_NEW", "Ev_new", NOW, forget_before=NOW - timedelta(days=1)) is True

    long_ago = NOW - timedelta(days=30)
    assert store.home_viewers({"U_OLD", "U_KEPT", "U_NEW"}, long_ago) == {"U_KEPT", "U_NEW"}
    assert opened(store, "U_OLD", "Ev_old", NOW) is True  # forgotten, so new again
    assert opened(store, "U_KEPT", "Ev_kept", NOW) is False  # still remembered


def test_a_batch_records_each_event_once_and_says_which_were_new(store: SlackEventStore) -> None:
    opened(store, "U_SEEN", "Ev_seen", NOW - timedelta(minutes=1))
    batch = [
        HomeOpen("U1", "Ev1"),
        HomeOpen("U2", "Ev_seen"),  # handled before, by any daemon
        HomeOpen("U1", "Ev1"),  # delivered twice within the batch: the first counts
        HomeOpen("U3", None),
        HomeOpen("U1", "Ev2"),  # the same person again, by a new event
        HomeOpen("U3", None),
    ]

    assert store.home_opened(batch, NOW) == [True, False, False, True, True, True]

    assert store.home_viewers({"U1", "U2", "U3"}, NOW) == {"U1", "U3"}
    assert store.home_opened([HomeOpen("U1", "Ev1"), HomeOpen("U1", "Ev2")], NOW) == [False, False]
    assert store.home_opened([], NOW) == []


@pytest.mark.parametrize("argument", ["now", "forget_before", "since"])
def test_naive_times_are_refused_and_nothing_is_written(store: SlackEventStore, argument: str) -> None:
    naive = datetime(2026, 11, 26, 12, 0)
    with pytest.raises(ValueError, match=argument):
        if argument == "since":
            store.home_viewers({"U1"}, naive)
        elif argument == "now":
            opened(store, "U1", "Ev1", naive)
        else:
            opened(store, "U1", "Ev1", NOW, forget_before=naive)
    assert opened(store, "U1", "Ev1", NOW) is True


# -- Several daemons on one database ------------------------------------------------------------------


def race_for_one_event(engines: list[Engine]) -> list[bool]:
    """Each daemon (its own store, here each on its own engine) records the same event at the same moment."""
    stores = [SqlClaimStore(engine) for engine in engines]
    barrier = threading.Barrier(len(stores))

    def daemon(store: SqlClaimStore) -> bool:
        barrier.wait(10)
        return opened(store, "U1", "Ev_retried", NOW)

    with ThreadPoolExecutor(max_workers=len(stores)) as pool:
        return list(pool.map(daemon, stores))


def test_daemons_on_one_sqlite_file_record_an_event_once(sqlite_engine: Engine, sqlite_url: str) -> None:
    others = [make_engine(sqlite_url) for _ in range(DAEMONS - 1)]
    try:
        results = race_for_one_event([sqlite_engine, *others])
    finally:
        for engine in others:
            engine.dispose()
    assert sorted(results) == [False] * (DAEMONS - 1) + [True]


@needs_postgres
def test_daemons_on_postgres_record_an_event_once(postgres_engine: Engine) -> None:
    others = [make_engine(postgres_engine.url.render_as_string(hide_password=False)) for _ in range(DAEMONS - 1)]
    try:
        results = race_for_one_event([postgres_engine, *others])
    finally:
        for engine in others:
            engine.dispose()
    assert sorted(results) == [False] * (DAEMONS - 1) + [True]


def test_a_home_opened_keeps_the_read_snapshot_answering_from_memory(sqlite_engine: Engine) -> None:
    # A Home open writes, but nothing the snapshot holds: the next /gpu status must not reload it.
    store = SqlClaimStore(sqlite_engine)
    store.sync_gpus("box", [Gpu("box", "GPU-0", 0)], NOW)
    store.list_gpus("box")
    with store.answering_from_memory() as in_memory:
        assert in_memory

    opened(store, "U1", "Ev1", NOW, forget_before=NOW - timedelta(days=1))
    assert store.home_viewers({"U1"}, NOW) == {"U1"}

    with store.answering_from_memory() as in_memory:
        assert in_memory
