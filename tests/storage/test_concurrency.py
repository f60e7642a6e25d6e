"""Races decided by the database: one winner among threads and among processes, and safe migrations."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine

from gpubot.core.models import ClaimStatus
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import current_revision, head_revision, upgrade_to_head
from tests.storage import workers
from tests.storage.conftest import needs_postgres

THREADS = 20
PROCESSES = 4
RESULT_TIMEOUT_S = 90


def assert_one_winner(results: list[tuple[str, ...]]) -> str:
    outcomes = Counter(result[0] for result in results)
    assert outcomes == {"won": 1, "held": len(results) - 1}, results
    [winner] = [result[1] for result in results if result[0] == "won"]
    # Every loser is told who won, and about which GPU.
    assert {result[1:] for result in results if result[0] == "held"} == {(winner, str(workers.GPU.index))}
    return winner


def race_threads(engine: Engine) -> None:
    store = SqlClaimStore(engine)
    barrier = threading.Barrier(THREADS)

    def contender(number: int) -> tuple[str, ...]:
        # Each thread takes its own connection from the engine's pool inside create_claims.
        barrier.wait(workers.BARRIER_TIMEOUT_S)
        return workers.claim(store, f"U_{number:02d}")

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(contender, range(THREADS)))

    winner = assert_one_winner(results)
    [active] = store.active_claims()
    assert (active.user_id, active.status) == (winner, ClaimStatus.ACTIVE)


def test_twenty_threads_one_sqlite_file_one_winner(sqlite_engine: Engine) -> None:
    race_threads(sqlite_engine)


@needs_postgres
def test_twenty_threads_on_postgres_one_winner(postgres_engine: Engine) -> None:
    race_threads(postgres_engine)


def _collect(results: Any, count: int) -> list[tuple[str, ...]]:
    return [results.get(timeout=RESULT_TIMEOUT_S) for _ in range(count)]


def _run_processes(target: Any, args_for: list[tuple[Any, ...]]) -> None:
    processes = [SPAWN.Process(target=target, args=args) for args in args_for]
    for process in processes:
        process.start()
    for process in processes:
        process.join(RESULT_TIMEOUT_S)
        if process.is_alive():
            process.kill()
            pytest.fail("a child process hung")


SPAWN = multiprocessing.get_context("spawn")


def test_four_processes_one_sqlite_file_one_winner(sqlite_engine: Engine) -> None:
    url = str(sqlite_engine.url)
    barrier = SPAWN.Barrier(PROCESSES)
    results = SPAWN.Queue()

    _run_processes(
        workers.claim_in_process,
        [(url, f"U_PROC{number}", barrier, results) for number in range(PROCESSES)],
    )

    winner = assert_one_winner(_collect(results, PROCESSES))
    assert [claim.user_id for claim in SqlClaimStore(sqlite_engine).active_claims()] == [winner]


def test_two_processes_migrate_one_empty_file_at_once(sqlite_url: str) -> None:
    barrier = SPAWN.Barrier(2)
    results = SPAWN.Queue()

    _run_processes(workers.upgrade_in_process, [(sqlite_url, barrier, results)] * 2)

    assert _collect(results, 2) == [("ok",), ("ok",)]
    engine = make_engine(sqlite_url)
    try:
        assert current_revision(engine) == head_revision()
        upgrade_to_head(engine)  # and a third, later, finds nothing to do
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
