"""PeriodicJobs: a stop that lands while a job runs lets it finish, or ends it, without an error logged."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone

import pytest

from gpubot.daemon.jobs import PeriodicJobs


async def _run_and_stop(job_s: float, stop_timeout_s: float) -> list[str]:
    jobs = PeriodicJobs()
    finished: list[str] = []

    async def slow() -> None:
        await asyncio.to_thread(time.sleep, job_s)
        finished.append("slow")

    jobs.every(timedelta(seconds=30), slow, "slow", first_run_at=datetime.now(timezone.utc))
    jobs.start()
    await asyncio.sleep(0.2)  # the job is now waiting on its thread
    await jobs.stop(stop_timeout_s)
    return finished


@pytest.mark.parametrize(("job_s", "stop_timeout_s", "finishes"), [(0.5, 2.0, True), (1.5, 0.3, False)])
def test_a_stop_mid_run_logs_no_error(caplog, job_s, stop_timeout_s, finishes):
    caplog.set_level(logging.INFO)
    started = time.monotonic()

    finished = asyncio.run(_run_and_stop(job_s, stop_timeout_s))

    assert (finished == ["slow"]) is finishes
    assert time.monotonic() - started < job_s + stop_timeout_s + 1.0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not any(r.exc_info for r in caplog.records)


def test_a_job_cancelled_while_running_is_ended_not_left_behind():
    async def scenario() -> bool:
        jobs = PeriodicJobs()
        started = asyncio.Event()

        async def forever() -> None:
            started.set()
            await asyncio.sleep(3600)

        jobs.every(timedelta(seconds=30), forever, "forever", first_run_at=datetime.now(timezone.utc))
        jobs.start()
        await asyncio.wait_for(started.wait(), 5)
        await jobs.stop(0.1)
        return all(task.done() for task in asyncio.all_tasks() if task is not asyncio.current_task())

    assert asyncio.run(scenario())
