"""Each week's digest is taken by one daemon and posted once, on SQLite and PostgreSQL, however many race."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from gpubot.storage.claim_store import SqlClaimStore
from tests.storage.conftest import needs_postgres

DUE = datetime(2026, 11, 23, 8, tzinfo=timezone.utc)
LEASE = timedelta(minutes=5)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_postgres)])
def engine(request):
    return request.getfixturevalue(f"{request.param}_engine")


def take(store, lease: str, now: datetime = DUE) -> bool:
    return store.take_digest(DUE, "C0DIGEST", lease, now, now + LEASE)


def test_one_daemon_takes_it_and_another_only_once_the_lease_ran_out(engine):
    first, second = SqlClaimStore(engine), SqlClaimStore(engine)
    assert take(first, "a")
    assert not take(second, "b")
    assert not take(second, "b", DUE + LEASE - timedelta(seconds=1))
    assert take(second, "b", DUE + LEASE + timedelta(seconds=1))  # "a" died without posting
    assert not first.digest_posting(DUE, "a", DUE + LEASE)  # and learns it lost the lease
    assert second.digest_posting(DUE, "b", DUE + LEASE)


def test_once_posting_it_is_never_taken_again_even_if_the_poster_died(engine):
    store = SqlClaimStore(engine)
    assert take(store, "a") and store.digest_posting(DUE, "a", DUE)
    assert not take(store, "b", DUE + timedelta(days=1))
    store.digest_posted(DUE, "a", DUE, "1700000000.000100")
    assert not take(store, "c", DUE + timedelta(days=2))


def test_one_slack_refused_may_be_tried_again_after_the_lease(engine):
    store = SqlClaimStore(engine)
    assert take(store, "a") and store.digest_posting(DUE, "a", DUE)
    store.digest_not_posted(DUE, "a")
    assert not take(store, "b", DUE + timedelta(minutes=1))
    assert take(store, "b", DUE + LEASE + timedelta(minutes=1))


def test_daemons_racing_for_the_same_week_take_it_once(engine):
    winners: list[str] = []
    barrier = threading.Barrier(8)

    def race(name: str) -> None:
        store = SqlClaimStore(engine)
        barrier.wait()
        if take(store, name):
            winners.append(name)

    threads = [threading.Thread(target=race, args=(f"d{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
