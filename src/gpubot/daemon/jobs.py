"""APScheduler jobs on the daemon's event loop: due work (expiry warnings, automatic release) and telemetry.

Nothing is persisted in the scheduler: every due-work tick reads what is due from the database, which is
the truth, so a restart loses nothing and catches up at once. Each job is `guarded`: any one failure (a
locked or vanished database, a driver error) is logged once per streak and retried with back-off, and
the job's heartbeat beats only after a run that succeeded, so a job that keeps failing turns the daemon
unhealthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gpubot.core.clock import Clock
from gpubot.core.history import UtilizationHistory
from gpubot.core.models import HostSample
from gpubot.core.streak import FailureStreak
from gpubot.daemon.digest_job import DIGEST_CHECK_INTERVAL
from gpubot.daemon.health import Health
from gpubot.daemon.sampler import TelemetrySampler
from gpubot.slack.gateway import ServiceGateway
from gpubot.slack.home import HomeTab

logger = logging.getLogger(__name__)

# Warnings and expiries land within this of their due time (plus the tick's own few milliseconds).
DUE_WORK_INTERVAL = timedelta(seconds=2)
_DUE_WORK_MAX_AGE_S = 60.0
# A telemetry run may take a while (nvidia-smi's time-out, many GPUs); only one stuck this long is a hang.
_TELEMETRY_MIN_MAX_AGE_S = 60.0

_CANCELLED_WAIT_S = 0.5
# The digest's check runs every minute; a run that posts may take a while (the chart, the upload).
_DIGEST_MAX_AGE_S = 600.0


class PeriodicJobs:
    """Interval jobs on the running event loop: each one run at a time, missed runs coalesced into one."""

    def __init__(self) -> None:
        self._scheduler = AsyncIOScheduler()
        self._running: set[asyncio.Task[object]] = set()
        self._stopping = False

    def every(self, interval: timedelta, job: Callable[[], Awaitable[None]], name: str, first_run_at: datetime) -> None:
        """Run `job` every `interval`, the first time at `first_run_at` (e.g. now, to catch up at once)."""

        async def run() -> None:
            task = asyncio.current_task()
            if task is not None:  # always: APScheduler runs a coroutine job as a task
                self._running.add(task)
            try:
                await job()
            except asyncio.CancelledError:
                # Cancelled by `stop` (or the loop's own end): APScheduler would log it as the job's error,
                # with a traceback, on every stop that lands mid-run.
                if not self._stopping:
                    raise
            finally:
                if task is not None:
                    self._running.discard(task)

        self._scheduler.add_job(
            run,
            "interval",
            seconds=interval.total_seconds(),
            id=name,
            name=name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,  # a late run still happens: expiries must never be skipped
            next_run_time=first_run_at,
        )

    def start(self) -> None:
        """Start running the jobs (inside the running loop)."""
        self._scheduler.start()

    async def stop(self, timeout_s: float) -> None:
        """Start no more runs; give a running one `timeout_s` to finish, then cancel it."""
        if not self._scheduler.running:
            return
        # Paused first: shutting down cancels running jobs at once.
        self._scheduler.pause()
        running = set(self._running)
        if running:
            await asyncio.wait(running, timeout=timeout_s)
        self._stopping = True
        self._scheduler.shutdown(wait=False)
        unfinished = {task for task in running if not task.done()}
        if unfinished:
            # A cancelled run ends at its next await (a thread's work goes on, unawaited).
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*unfinished, return_exceptions=True), _CANCELLED_WAIT_S)


def start_jobs(
    gateway: ServiceGateway,
    home: HomeTab,
    sampler: TelemetrySampler,
    history: UtilizationHistory,
    clock: Clock,
    telemetry_interval: timedelta,
    health: Health,
    now_s: Callable[[], float],
    read_fleet: Callable[[], Sequence[HostSample]] | None = None,
    digest: Callable[[], Awaitable[None]] | None = None,
) -> PeriodicJobs:
    """Declare the two jobs' heartbeats and start them: due work at once, telemetry one interval on.

    `digest`, where a digest channel is set, looks each minute whether the weekly digest is due and posts it.
    `read_fleet` reads the other hosts' reports for the claim service (blocking: run in a thread) with each
    sample, so no command waits on the database for them, and returns their new samples; None where there is no fleet.
    """
    health.expect("telemetry", max(10 * telemetry_interval.total_seconds(), _TELEMETRY_MIN_MAX_AGE_S), now_s())

    async def sample_telemetry() -> None:
        sample = await asyncio.to_thread(sampler.sample_once)
        if sample is not None:
            history.record(sample, clock.now())  # on the loop thread, where the Home tab reads it
        if read_fleet is not None:
            # The other hosts' new samples feed their Home trends, as this host's own do.
            for reported in await asyncio.to_thread(read_fleet):
                history.record(reported, clock.now())

    health.expect("due-work", _DUE_WORK_MAX_AGE_S, now_s())

    async def due_work() -> None:
        due = await gateway.process_due()
        report = due.outcome
        if report.expired or report.warned:
            logger.info("expired %d claims, warned %d holders", len(report.expired), len(report.warned))
            home.refresh_each(due.concerned)

    jobs = PeriodicJobs()
    if digest is not None:
        health.expect("digest", _DIGEST_MAX_AGE_S, now_s())
        jobs.every(DIGEST_CHECK_INTERVAL, guarded("digest", digest, health, now_s, logger), "digest", clock.now())
    jobs.every(
        DUE_WORK_INTERVAL, guarded("due-work", due_work, health, now_s, logger), "due-work", first_run_at=clock.now()
    )
    jobs.every(
        telemetry_interval,
        guarded("telemetry", sample_telemetry, health, now_s, logger),
        "telemetry",
        first_run_at=clock.now() + telemetry_interval,
    )
    jobs.start()
    return jobs


def guarded(
    name: str,
    job: Callable[[], Awaitable[None]],
    health: Health,
    now_s: Callable[[], float],
    logger: logging.Logger,
) -> Callable[[], Awaitable[None]]:
    """`job` for a periodic scheduler: never raises, skips runs while backing off, beats `name` on success.

    The heartbeat `name` must have been declared with `health.expect`.
    """
    streak = FailureStreak(name, logger)
    next_try_s = float("-inf")

    async def run() -> None:
        nonlocal next_try_s
        if now_s() < next_try_s:
            return
        try:
            await job()
        except Exception as error:  # any one failure: the next run may well succeed
            next_try_s = now_s() + streak.failed(error)
            return
        streak.succeeded()
        health.beat(name, now_s())

    return run
