"""This process's hold on its host name in the fleet: taken at start, kept by a report per sample, given back at a stop.

Two live processes reporting for one host name would mix two machines' GPUs, so a process that finds its name held
waits (up to the host time-out) for the holder to go silent, and then takes it or stops with `HostNameTaken`. A
process whose report is refused lost its name (another took it after a silence): it stops too, naming the other.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

from gpubot.core.clock import Clock
from gpubot.core.durations import format_duration
from gpubot.core.errors import HostNameTaken
from gpubot.core.models import HostRole, HostSample, ProcessIdentity
from gpubot.core.ports import FleetStore
from gpubot.core.usage import UsageRule
from gpubot.daemon.waiting import stopped_within

logger = logging.getLogger(__name__)

# How often a process waiting for its name looks again: soon after the holder goes stale, yet a small share of
# the time-out.
_POLL_LONGEST_S = 1.0
_POLLS_PER_TIMEOUT = 10
# A release at a stop that the database does not answer in this long is left to the time-out.
RELEASE_TIMEOUT_S = 3.0


class HostRegistration:
    """Registers a host name for this process, reports under it, and releases it.

    Args:
        store: the fleet's database.
        name: the host name (GPUBOT_HOST_NAME, or the machine's short hostname).
        role: what this process does.
        process: this process, as the registry records it.
        clock: the wall clock (reports are stamped with it).
        timeout: GPUBOT_HOST_TIMEOUT.
        on_lost: called once, from the reporting thread, when a report is refused: the name was taken.
        usage: how each reported sample is counted into the usage record (None: not counted).
    """

    def __init__(
        self,
        store: FleetStore,
        name: str,
        role: HostRole,
        process: ProcessIdentity,
        clock: Clock,
        timeout: timedelta,
        on_lost: Callable[[], object],
        usage: UsageRule | None = None,
    ) -> None:
        self._store = store
        self.name = name
        self._role = role
        self._process = process
        self._clock = clock
        self._timeout = timeout
        self._on_lost = on_lost
        self._usage = usage
        self.instance = uuid.uuid4().hex
        # Why the name was lost, once it was: the error the process stops with.
        self.lost: HostNameTaken | None = None

    async def take(self, stop: asyncio.Event) -> bool:
        """Register the name, waiting while another live process holds it (off the event loop).

        Returns:
            True once the name is this process's; False when `stop` was set while waiting.

        Raises:
            HostNameTaken: the holder kept reporting for the whole time-out.
            StoreBusy: the database stayed locked.
        """
        poll_s = min(_POLL_LONGEST_S, self._timeout.total_seconds() / _POLLS_PER_TIMEOUT)
        loop = asyncio.get_running_loop()
        give_up_at: float | None = None
        while True:
            try:
                await asyncio.to_thread(self._register)
                return True
            except HostNameTaken as taken:
                if give_up_at is None:
                    # One more poll than the time-out: a holder that stopped just before is stale by then.
                    give_up_at = loop.time() + self._timeout.total_seconds() + poll_s
                    logger.warning(
                        "host name %s is held by %s; waiting up to %s for it to stop reporting",
                        self.name,
                        taken.holder,
                        format_duration(self._timeout),
                    )
                elif loop.time() >= give_up_at:
                    raise
            if await stopped_within(stop, poll_s):
                return False

    def _register(self) -> None:
        self._store.register_host(
            self.name, self._role, self.instance, str(self._process), self._clock.now(), self._timeout
        )

    def report(self, sample: HostSample | None) -> bool:
        """Report the host's latest sample (blocking: call it off the event loop).

        Args:
            sample: the latest telemetry; None when it could not be read.

        Returns:
            True while the name is this process's. On the first refusal it logs an error naming whoever holds
            the name now and calls `on_lost`; after that it reports nothing more.

        Raises:
            StoreBusy: the database stayed locked (the next report may get through).
        """
        if self.lost is not None:
            return False
        if self._store.report(self.name, self.instance, sample, self._clock.now(), self._usage):
            return True
        self.lost = self._taken_by()
        logger.error(
            "host name %s is no longer this process's: %s holds it (last report %s UTC); stopping",
            self.name,
            self.lost.holder,
            f"{self.lost.last_report_at:%Y-%m-%d %H:%M:%S}",
        )
        self._on_lost()
        return False

    def _taken_by(self) -> HostNameTaken:
        for host in self._store.hosts():
            if host.name == self.name and host.holder is not None and host.last_report_at is not None:
                return HostNameTaken(self.name, str(host.holder), host.last_report_at)
        # Released under it (by hand, in the database): nobody holds it, but it is not this process's either.
        return HostNameTaken(self.name, "no process (it was released)", self._clock.now())

    async def release(self) -> None:
        """Give the name up at a clean stop, so a successor takes it at once; bounded in time, never raises."""
        if self.lost is not None:
            return
        work = asyncio.ensure_future(asyncio.to_thread(self._store.release_host, self.name, self.instance))
        try:
            await asyncio.wait_for(work, RELEASE_TIMEOUT_S)
        except Exception as error:  # the name then frees itself after the time-out
            timeout = format_duration(self._timeout)
            logger.warning("could not release host name %s (%r); it frees itself after %s", self.name, error, timeout)
