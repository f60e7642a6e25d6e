"""What systemd hears from `gpubot serve`: READY once connected, a STATUS line, watchdog pings while healthy.

`ServiceWatchdog.run()` is one of the daemon's background tasks. Every few seconds it looks at the
Socket Mode connection, reads the claim count from the database (that read is the database's
heartbeat), updates the status line and, only while `Health` says all is well, pings the watchdog.
Because the pings come from the event loop, a blocked loop stops them too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from gpubot.core.errors import StoreReplaced
from gpubot.core.service import ClaimService
from gpubot.daemon.health import Health
from gpubot.daemon.sd_notify import SystemdNotifier

logger = logging.getLogger(__name__)

DATABASE_HEARTBEAT = "database"
# How often the state is checked when systemd set no watchdog; also the most it waits with one.
_CHECK_INTERVAL_S = 5.0
# The database must have answered within this long; its busy timeout is seconds, so this is a real outage.
_DATABASE_MAX_AGE_S = 60.0


@dataclass(frozen=True)
class ClaimCount:
    """How many of the host's GPUs are claimed right now."""

    claimed: int
    total: int


class ServiceWatchdog:
    """Reports readiness, status and health to systemd (a no-op notifier outside it)."""

    def __init__(
        self,
        notifier: SystemdNotifier,
        health: Health,
        *,
        is_connected: Callable[[], Awaitable[bool]],
        count_claims: Callable[[], Awaitable[ClaimCount]],
        watchdog_interval: timedelta | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Declare the database heartbeat and work out how often to check.

        Args:
            notifier: Where READY/STATUS/WATCHDOG/STOPPING go.
            health: The daemon's health; this declares and beats its "database" heartbeat.
            is_connected: Whether the Socket Mode connection is up (slack_sdk's `is_connected()`).
            count_claims: Reads the claim count from the database; raising or hanging means the
                database is not answering.
            watchdog_interval: `WatchdogSec=` as systemd passed it in `$WATCHDOG_USEC`; None without one.
                Pings go out at half of it, as sd_watchdog_enabled(3) advises.
            clock: Monotonic seconds; injected by tests.
        """
        self._notifier = notifier
        self._health = health
        self._is_connected = is_connected
        self._count_claims = count_claims
        self._watchdog = watchdog_interval is not None
        self.check_interval_s = _CHECK_INTERVAL_S
        if watchdog_interval is not None:
            self.check_interval_s = min(_CHECK_INTERVAL_S, watchdog_interval.total_seconds() / 2)
        self._clock = clock
        self._ready = False
        self._last_status: str | None = None
        self._claims: ClaimCount | None = None
        # Set for good when the database file was deleted or replaced: the service needs a restart.
        self._fatal: str | None = None
        health.expect(DATABASE_HEARTBEAT, _DATABASE_MAX_AGE_S, clock())

    async def run(self) -> None:
        """Check now and then every `check_interval_s` until cancelled."""
        while True:
            await self.check_once()
            await asyncio.sleep(self.check_interval_s)

    async def check_once(self) -> str:
        """Observe the connection and the database, tell systemd, and return the status line sent.

        READY=1 goes out the first time the connection is seen up (the daemon has already migrated the
        database by then); WATCHDOG=1 only after that and only while healthy.
        """
        connected = await self._is_connected()
        self._health.connection(connected, self._clock())
        await self._read_claims()
        now_s = self._clock()
        status = self._describe(connected, now_s)
        if connected and not self._ready:
            self._notifier.ready(status)
            self._ready = True
            logger.info("ready: %s", status)
        elif status != self._last_status:
            self._notifier.status(status)
            if self._health.problems(now_s) or self._fatal is not None:
                logger.warning("%s", status)
        self._last_status = status
        # A lost database file stops the pings: systemd restarts gpubot on the file there now.
        if self._ready and self._watchdog and self._health.healthy(now_s) and self._fatal is None:
            self._notifier.watchdog()
        return status

    def stopping(self) -> None:
        """Tell systemd that shutdown has begun."""
        self._notifier.stopping("stopping")

    async def _read_claims(self) -> None:
        try:
            # No asyncio.wait_for here: before Python 3.12 it can swallow the task's cancellation when the
            # read finishes at that moment, and this loop would then outlive shutdown. A read that hangs
            # needs no time-out either: the beat goes stale, the daemon turns unhealthy, pings stop.
            self._claims = await self._count_claims()
        except StoreReplaced as error:
            self._fatal = error.status
            return
        except Exception as error:
            # Any failure to read (busy, gone, a driver error) is the database not answering.
            # Not swallowed: the missing beat makes the daemon unhealthy, which the status line shows
            # and which, lasting, stops the watchdog pings so systemd restarts the service.
            logger.debug("database check failed: %r", error)
            return
        self._health.beat(DATABASE_HEARTBEAT, self._clock())

    def _describe(self, connected: bool, now_s: float) -> str:
        claims = self._claims
        parts = []
        problems = self._health.problems(now_s)
        if self._fatal is not None:
            problems = [self._fatal, *problems]
        if problems:
            parts.append("unhealthy: " + "; ".join(problems))
        if connected:
            parts.append("connected")
        else:
            down_s = self._health.reconnecting_for_s(now_s) or 0.0
            parts.append(f"reconnecting to Slack for {down_s:.0f} s")
        if claims is not None:
            parts.append(f"{claims.claimed} of {claims.total} GPUs claimed")
        return ", ".join(parts)


def claim_counter(
    service: ClaimService, check_file: Callable[[], None] = lambda: None
) -> Callable[[], Awaitable[ClaimCount]]:
    """`count_claims` for `ServiceWatchdog`: the dashboard's count, read off the event loop.

    Args:
        service: the claim service.
        check_file: raises `StoreReplaced` when the database file is gone (`SqlClaimStore.check_file`).
    """

    def count() -> ClaimCount:
        check_file()
        dashboard = service.dashboard(None)
        return ClaimCount(claimed=len(dashboard.rows) - dashboard.free_count, total=len(dashboard.rows))

    async def count_claims() -> ClaimCount:
        return await asyncio.to_thread(count)

    return count_claims
