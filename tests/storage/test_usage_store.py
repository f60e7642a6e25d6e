"""Counting samples into the usage tables, on SQLite and PostgreSQL: once per sample time, whatever happens."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from gpubot.core.models import ClaimStatus, EventKind, Gpu, GpuSample, HostRole, HostSample, NewClaim, ProcessSample
from gpubot.core.usage import UsageRule
from gpubot.core.usage_report import UsageFilter
from gpubot.storage import tables
from gpubot.storage.claim_store import SqlClaimStore
from tests.storage.conftest import needs_postgres

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
RULE = UsageRule(interval=timedelta(seconds=2), active_pct=10, retention=timedelta(days=30))
GPU = Gpu("box", "GPU-0", 0, "NVIDIA H100 80GB HBM3")


def sample(utilization: int, users: tuple[str, ...] = ()) -> HostSample:
    processes = tuple(ProcessSample(100 + n, "python", 1000 * (n + 1), user) for n, user in enumerate(users))
    gpu = GpuSample(0, "GPU-0", "NVIDIA H100 80GB HBM3", 81559, 2000 + utilization, utilization, processes=processes)
    return HostSample("box", "580.1", (gpu,))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_postgres)])
def engine(request):
    return request.getfixturevalue(f"{request.param}_engine")


@pytest.fixture
def store(engine):
    store = SqlClaimStore(engine)
    store.register_host("box", HostRole.SERVE, "me", "pid 1", T0 - timedelta(hours=2), timedelta(seconds=30))
    store.sync_gpus("box", [GPU], T0 - timedelta(hours=2))
    return store


def claim(store, started_at=T0 - timedelta(minutes=1)):
    [held] = store.create_claims([NewClaim(GPU, "U0ALICE", "train llama", started_at, started_at + timedelta(hours=2))])
    return held


def rows(engine, table):
    with engine.connect() as connection:
        return connection.execute(select(*table.c)).all()


def test_a_sample_is_counted_into_its_minute_hour_and_claim_once_however_often_it_is_reported(engine, store):
    held = claim(store)
    assert store.report("box", "me", sample(90, ("alice",)), T0, RULE)
    assert store.report("box", "me", sample(0), T0 + timedelta(seconds=2), RULE)
    # A restart or a retry reporting the same moment again, or an older one: counted already.
    assert store.report("box", "me", sample(90), T0 + timedelta(seconds=2), RULE)
    assert store.report("box", "me", sample(90), T0 + timedelta(seconds=1), RULE)

    [minute] = rows(engine, tables.gpu_usage_minutes)
    assert (minute.observed_s, minute.busy_s, minute.utilization_s) == (4.0, 2.0, 180.0)
    assert (minute.utilization_peak, minute.memory_peak_mib) == (90, 2090)
    [hour] = rows(engine, tables.gpu_usage_hours)
    assert (hour.gpu_name, hour.observed_s, hour.busy_s) == ("NVIDIA H100 80GB HBM3", 4.0, 2.0)
    usage = store.claim_usage([held.id])[held.id]
    assert (usage.tally.observed_s, usage.tally.busy_s, usage.tally.utilization_avg) == (4.0, 2.0, 45.0)
    assert usage.users == frozenset({"alice"})


def test_a_process_that_lost_its_name_counts_nothing(engine, store):
    assert not store.report("box", "someone-else", sample(90), T0, RULE)
    assert rows(engine, tables.gpu_usage_minutes) == []


def test_two_reporters_racing_with_the_same_sample_count_it_once(engine, store):
    claim(store)
    barrier = threading.Barrier(8)

    def report() -> None:
        barrier.wait()
        SqlClaimStore(engine).report("box", "me", sample(50), T0, RULE)

    threads = [threading.Thread(target=report) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    [minute] = rows(engine, tables.gpu_usage_minutes)
    assert minute.observed_s == 2.0
    [usage] = rows(engine, tables.claim_usage)
    assert usage.observed_s == 2.0


def test_a_gap_longer_than_twice_the_interval_is_not_observed(engine, store):
    held = claim(store)
    store.report("box", "me", sample(90), T0, RULE)
    store.report("box", "me", sample(90), T0 + timedelta(minutes=5), RULE)
    assert store.claim_usage([held.id])[held.id].tally.observed_s == 4.0


def test_old_minutes_and_hours_past_the_retention_are_forgotten_once_an_hour(engine, store):
    store.report("box", "me", sample(50), T0 - timedelta(days=40), RULE)
    store.report("box", "me", sample(50), T0 - timedelta(days=2), RULE)
    assert len(rows(engine, tables.gpu_usage_hours)) == 1  # the one 40 days old is past the 30 days kept
    assert len(rows(engine, tables.gpu_usage_minutes)) == 1
    store.report("box", "me", sample(50), T0, RULE)
    assert [row.hour for row in rows(engine, tables.gpu_usage_hours)] == [
        (T0 - timedelta(days=2)).replace(minute=0),
        T0,
    ]
    assert [row.minute for row in rows(engine, tables.gpu_usage_minutes)] == [T0]


def test_usage_figures_sum_held_and_busy_per_person_prorated_at_the_period_edge(engine, store):
    held = claim(store, started_at=T0 - timedelta(hours=1))
    store.report("box", "me", sample(90), T0, RULE)
    store.report("box", "me", sample(90), T0 + timedelta(seconds=2), RULE)
    store.end_claim(held.id, ClaimStatus.RELEASED, EventKind.RELEASED, "U0ALICE", T0 + timedelta(hours=1))

    whole = store.usage_figures(T0 - timedelta(days=7), T0 + timedelta(hours=2), UsageFilter())
    [person] = whole.people
    assert person.user_id == "U0ALICE"
    assert (person.totals.held_s, person.totals.observed_s, person.totals.busy_s, person.totals.claims) == (
        7200.0,
        4.0,
        4.0,
        1,
    )
    assert [(p.purpose, p.held_s) for p in whole.purposes] == [("train llama", 7200.0)]
    [hour] = whole.hours
    assert (hour.hour, hour.utilization_pct, hour.observed_s) == (T0, 90.0, 4.0)

    half = store.usage_figures(T0, T0 + timedelta(hours=2), UsageFilter(model="h100"))
    assert half.people[0].totals.held_s == 3600.0 and half.people[0].totals.busy_s == 2.0
    assert store.usage_figures(T0, T0 + timedelta(hours=2), UsageFilter(host="other")).people == ()
    assert store.usage_figures(T0, T0 + timedelta(hours=2), UsageFilter(model="a100")).people == ()
    mine = store.usage_figures(T0, T0 + timedelta(hours=2), UsageFilter(user_id="U0ALICE"))
    assert mine.people and mine.hours == ()


def test_counting_adds_rows_without_rewriting_the_claims(engine, store):
    claim(store)
    with engine.connect() as connection:
        before = connection.execute(select(func.count()).select_from(tables.claim_events)).scalar_one()
    store.report("box", "me", sample(90), T0, RULE)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(tables.claim_events)).scalar_one() == before


def test_the_recent_minutes_seed_the_trends_oldest_first(engine, store):
    store.report("box", "me", sample(90), T0 - timedelta(minutes=2), RULE)
    store.report("box", "me", sample(30), T0 - timedelta(minutes=1), RULE)
    store.report("box", "me", sample(10), T0, RULE)
    minutes = store.recent_minutes(T0 - timedelta(hours=1), T0)
    assert [(m.uuid, m.at, m.utilization_pct, m.observed_s) for m in minutes] == [
        ("GPU-0", T0 - timedelta(minutes=2), 90.0, 2.0),
        ("GPU-0", T0 - timedelta(minutes=1), 30.0, 2.0),
    ]
