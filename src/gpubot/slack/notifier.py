"""Delivers the outbox: the DMs gpubot owes people, retried while Slack is unreachable or rate-limits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

import aiohttp
from slack_sdk.errors import SlackApiError

from gpubot.core.clock import Clock
from gpubot.core.models import OutboxItem
from gpubot.core.outbox import Outbox
from gpubot.loops import FailureStreak
from gpubot.slack import blocks
from gpubot.slack.dm import DirectMessages

logger = logging.getLogger(__name__)


class NoticeSender:
    """Posts due notices as DMs; the outbox row is marked sent only after Slack accepted the message."""

    def __init__(
        self,
        outbox: Outbox,
        dms: DirectMessages,
        clock: Clock,
        timezone: ZoneInfo,
        wake: asyncio.Event,
        beat: Callable[[], None] = lambda: None,
        failure_streak: FailureStreak | None = None,
    ) -> None:
        """Args:
        beat: called after every pass over the outbox that reached the database, idle or not: the
            sender's heartbeat. It stops while the database keeps failing.
        failure_streak: how failed passes are logged and backed off; tests pass short back-offs.
        """
        self._outbox = outbox
        self._dms = dms
        self._clock = clock
        self._timezone = timezone
        self._wake = wake
        self._beat = beat
        self._streak = failure_streak or FailureStreak("DM sender", logger)

    async def run(self, poll_interval: timedelta) -> None:
        """Deliver due notices until cancelled: at once when `wake` is set, else every `poll_interval`.

        Never ends on a failure: one pass that raises (a locked or vanished database, anything) is logged
        once per streak and the next pass comes after a capped back-off.
        """
        while True:
            try:
                await self.deliver_due()
            except Exception as error:  # any one failure: the next pass may well succeed
                await asyncio.sleep(self._streak.failed(error))
                continue
            self._streak.succeeded()
            self._beat()
            # asyncio.wait, not wait_for: before Python 3.12 wait_for can swallow this task's cancellation
            # when the event fires at that moment, and the loop would outlive shutdown.
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({woken}, timeout=poll_interval.total_seconds())
            finally:
                woken.cancel()
            self._wake.clear()

    async def deliver_due(self) -> int:
        """Try every due notice once; returns how many Slack accepted."""
        delivered = 0
        for item in await asyncio.to_thread(self._outbox.take_due):
            if await self._deliver(item):
                delivered += 1
        return delivered

    async def _deliver(self, item: OutboxItem) -> bool:
        message = blocks.notice_message(item, self._timezone, self._clock.now())
        try:
            await self._dms.send(item.notice.user_id, message)
        except SlackApiError as error:
            retry_after = _retry_after(error)
            reason = str(error.response.get("error", "")) or f"HTTP {error.response.status_code}"
            logger.warning("DM %s to %s failed: %s", item.id, item.notice.user_id, reason)
            await asyncio.to_thread(self._outbox.failed, item, reason, retry_after)
            return False
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            logger.warning("DM %s to %s failed: Slack unreachable (%r)", item.id, item.notice.user_id, error)
            await asyncio.to_thread(self._outbox.failed, item, f"unreachable: {error!r}")
            return False
        await asyncio.to_thread(self._outbox.delivered, item)
        return True


def _retry_after(error: SlackApiError) -> timedelta | None:
    if error.response.status_code != 429:
        return None
    value = error.response.headers.get("Retry-After") or error.response.headers.get("retry-after")
    try:
        return timedelta(seconds=int(value)) if value is not None else None
    except (TypeError, ValueError):
        return None
