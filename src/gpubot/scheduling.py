"""APScheduler jobs on the daemon's event loop: due work (expiry warnings, automatic release) and telemetry.

Nothing is persisted in the scheduler: every due-work tick reads what is due from the database, which is
the truth, so a restart loses nothing and catches up at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler


class PeriodicJobs:
    """Interval jobs on the running event loop: each one run at a time, missed runs coalesced into one."""

    def __init__(self) -> None:
        self._scheduler = AsyncIOScheduler()

    def every(self, interval: timedelta, job: Callable[[], Awaitable[None]], name: str, first_run_at: datetime) -> None:
        """Run `job` every `interval`, the first time at `first_run_at` (e.g. now, to catch up at once)."""
        self._scheduler.add_job(
            job,
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

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
