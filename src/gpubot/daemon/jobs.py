"""APScheduler jobs on the daemon's event loop: due work (expiry warnings, automatic release) and telemetry.

Nothing is persisted in the scheduler: every due-work tick reads what is due from the database, which is
the truth, so a restart loses nothing and catches up at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

_CANCELLED_WAIT_S = 0.5


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
