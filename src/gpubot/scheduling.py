"""The APScheduler job that carries out due work: expiry warnings and automatic release.

Nothing is persisted in the scheduler: every tick reads what is due from the database, which is the
truth, so a restart loses nothing and catches up at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

logger = logging.getLogger(__name__)


class DueWorkScheduler:
    """Runs one short interval job on the daemon's event loop: one run at a time, missed runs coalesced."""

    def __init__(self, tick: Callable[[], Awaitable[None]], interval: timedelta) -> None:
        self._tick = tick
        self._interval = interval
        self._scheduler = AsyncIOScheduler()

    def start(self, first_run_at: datetime) -> None:
        """Start ticking (call inside the running loop); the first tick at `first_run_at` catches up at once."""
        self._scheduler.add_job(
            self._tick,
            "interval",
            seconds=self._interval.total_seconds(),
            id="due-work",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,  # a late tick still runs: expiries must never be skipped
            next_run_time=first_run_at,
        )
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
