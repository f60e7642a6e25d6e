"""Delivers the outbox: the DMs gpubot owes people, retried while Slack is unreachable or rate-limits.

No DM is lost or doubled:

* Each delivery is bounded (`_DELIVERY_BOUND_S`) and starts only while this sender's lease has at least
  that long to run, so it never outlives the lease; a few run at once, so one that hangs holds no other.
* A notice that no longer means anything (a warning for a claim that ended or was extended) is given up,
  not sent; one Slack refuses for good (the person is gone) is given up once, not retried forever.
* Each DM carries Slack message metadata naming its notice. An attempt whose outcome is unknown (time-out,
  connection lost, Slack's own internal error, a sender that died mid-send) leaves the notice "unsettled";
  before posting it again, the next attempt looks in the DM for it and, finding it, records it as sent.
* A rate limit holds back every call of that Web API method until its Retry-After, not just one DM.
* When Slack accepted a DM but recording that failed, the record is retried before anything else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
from slack_sdk.errors import SlackApiError

from gpubot.core.clock import Clock
from gpubot.core.models import NoticeKind, OutboxItem
from gpubot.core.outbox import Outbox
from gpubot.core.streak import FailureStreak
from gpubot.slack import messages
from gpubot.slack.dm import DirectMessages

logger = logging.getLogger(__name__)

# DMs in flight at once.
_CONCURRENCY = 4
# One delivery (open the DM, maybe look in it, post) takes at most this long; the outbox lease is longer.
_DELIVERY_BOUND_S = 10.0
# The Web API methods a delivery may call; a rate limit on any of them postpones deliveries.
_POST = "chat.postMessage"
_DM_METHODS = ("conversations.open", "conversations.history", _POST)
# What a lost post is looked for by.
NOTICE_EVENT_TYPE = "gpubot_notice"
# Refusals that no retry can change for this DM: the person or their DM is gone, or the message itself is
# refused. Token errors (invalid_auth, account_inactive, token_revoked, missing_scope) are not among them:
# they stop every DM until an operator fixes the token, after which the DMs still owed must go out.
PERMANENT_ERRORS = frozenset(
    {
        "user_not_found",
        "users_not_found",
        "user_disabled",
        "channel_not_found",
        "cannot_dm_bot",
        "is_archived",
        "messages_tab_disabled",
        "invalid_blocks",
        "msg_too_long",
        "no_text",
    }
)
# Slack's own failures that may have happened after the message was posted.
_AMBIGUOUS_ERRORS = frozenset({"internal_error", "fatal_error", "request_timeout", "service_unavailable"})


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
        *,
        delivery_bound_s: float = _DELIVERY_BOUND_S,
        concurrency: int = _CONCURRENCY,
        several_hosts: Callable[[], bool] = lambda: False,
    ) -> None:
        """Set up the sender; nothing runs until it is started.

        Args:
            outbox: where the notices come from and their outcomes go.
            dms: how a notice reaches its holder.
            clock: the time, for leases and retries.
            timezone: the host's, for the times written in a DM.
            wake: set when a new notice is written, so it goes out before the next pass is due.
            beat: called whenever the sender reached the database (each pass, idle or not, and each lease
                taken): its heartbeat. It stops while the database keeps failing.
            failure_streak: how failed passes are logged and backed off; tests pass short back-offs.
            delivery_bound_s: the longest one delivery may take; shorter than the outbox's lease.
            concurrency: deliveries in flight at once.
            several_hosts: whether the fleet has several hosts (blocking), so a DM names the GPU's host.
        """
        self._several_hosts = several_hosts
        self._outbox = outbox
        self._dms = dms
        self._clock = clock
        self._timezone = timezone
        self._wake = wake
        self._beat = beat
        self._streak = failure_streak or FailureStreak("DM sender", logger)
        self._bound_s = delivery_bound_s
        self._concurrency = concurrency
        self._rate_limited_until: dict[str, datetime] = {}
        # Slack accepted these; recording it failed. Recorded before anything else is sent.
        self._unrecorded: list[OutboxItem] = []

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
        """Deliver every due notice, a few at a time; returns how many Slack accepted.

        Raises:
            Exception: the database failed (after the deliveries in flight finished).
        """
        await self._record_unrecorded()
        delivered = 0
        in_flight: set[asyncio.Task[bool]] = set()
        failure: Exception | None = None
        try:
            while True:
                free = self._concurrency - len(in_flight)
                if free > 0 and failure is None and self._blocked_until(_POST) is None:
                    try:
                        items = await asyncio.to_thread(self._outbox.take_due, free)
                    except Exception as error:
                        failure = error
                    else:
                        self._beat()
                        in_flight.update(asyncio.create_task(self._deliver(item)) for item in items)
                if not in_flight:
                    break
                done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    raised = task.exception()
                    if raised is not None:
                        failure = failure or (raised if isinstance(raised, Exception) else RuntimeError(raised))
                    elif task.result():
                        delivered += 1
        finally:
            for task in in_flight:
                task.cancel()
        if failure is not None:
            raise failure
        return delivered

    async def _record_unrecorded(self) -> None:
        while self._unrecorded:
            await asyncio.to_thread(self._outbox.delivered, self._unrecorded[0])
            self._unrecorded.pop(0)

    async def _deliver(self, item: OutboxItem) -> bool:
        """One notice: sent (True), or settled otherwise. Raises only when the database failed."""
        stale = self._outbox.stale_reason(item)
        if stale is not None:
            logger.info("DM %s to %s dropped: %s", item.id, item.notice.user_id, stale)
            await asyncio.to_thread(self._outbox.given_up, item, f"dropped: {stale}")
            return False
        blocked = self._blocked_until(*_DM_METHODS)
        if blocked is not None:
            await asyncio.to_thread(self._outbox.postponed, item, blocked, "rate limited")
            return False
        if self._outbox.time_left(item).total_seconds() < self._bound_s:
            # It waited for a slot too long: it goes back rather than risk a send past the lease.
            await asyncio.to_thread(self._outbox.postponed, item, self._clock.now(), "lease ran short")
            return False
        started = self._clock.now()
        try:
            await asyncio.wait_for(self._post(item), self._bound_s)
        except SlackApiError as error:
            await self._refused(item, error, started)
            return False
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            logger.warning(
                "DM %s to %s: outcome unknown (%r); will look before retrying", item.id, item.notice.user_id, error
            )
            await asyncio.to_thread(
                self._outbox.failed, item, f"unreachable: {error!r}", unsettled_since=item.unsettled_since or started
            )
            return False
        try:
            await asyncio.to_thread(self._outbox.delivered, item)
        except Exception:
            self._unrecorded.append(item)  # Slack has it: record it before anything else, never send it again
            raise
        return True

    async def _post(self, item: OutboxItem) -> None:
        """Post the DM, unless an earlier attempt whose outcome was unknown is found to have posted it."""
        user_id = item.notice.user_id
        payload = {"notice_id": item.id, "claim_id": item.notice.claim_id, "kind": item.notice.kind.value}
        if item.unsettled_since is not None and await self._dms.find_posted(user_id, NOTICE_EVENT_TYPE, payload):
            logger.info("DM %s to %s had reached Slack already; not posted again", item.id, user_id)
            return
        # A claim's confirmation carries its CUDA_VISIBLE_DEVICES line, which for a whole MIG card names its slices.
        devices = (
            await asyncio.to_thread(self._outbox.cuda_devices, item) if item.notice.kind is NoticeKind.CLAIMED else None
        )
        several = await asyncio.to_thread(self._several_hosts)
        message = messages.notice_message(item, self._timezone, self._clock.now(), devices, several)
        await self._dms.send(user_id, message, metadata={"event_type": NOTICE_EVENT_TYPE, "event_payload": payload})

    async def _refused(self, item: OutboxItem, error: SlackApiError, started: datetime) -> None:
        method = _method(error)
        code = str(error.response.get("error", "")) or f"HTTP {error.response.status_code}"
        retry_after = _retry_after(error)
        user_id = item.notice.user_id
        if retry_after is not None:
            self._rate_limited_until[method] = self._clock.now() + retry_after
            logger.warning("%s rate limited for %.0f s; DMs wait", method, retry_after.total_seconds())
            await asyncio.to_thread(
                self._outbox.postponed, item, self._clock.now() + retry_after, f"{method}: rate limited"
            )
            return
        if code in PERMANENT_ERRORS:
            logger.warning("DM %s to %s given up: %s said %s", item.id, user_id, method, code)
            await asyncio.to_thread(self._outbox.given_up, item, f"{method}: {code}")
            return
        logger.warning("DM %s to %s failed: %s said %s", item.id, user_id, method, code)
        # Slack refused the post itself: it did not go out, and the DM was looked in first. Any other
        # refusal came before the post: whatever an earlier attempt left unknown still is.
        if method == _POST:
            ambiguous = code in _AMBIGUOUS_ERRORS or error.response.status_code >= 500
            unsettled = (item.unsettled_since or started) if ambiguous else None
        else:
            unsettled = item.unsettled_since
        await asyncio.to_thread(self._outbox.failed, item, f"{method}: {code}", unsettled_since=unsettled)

    def _blocked_until(self, *methods: str) -> datetime | None:
        now = self._clock.now()
        until = [self._rate_limited_until[m] for m in methods if self._rate_limited_until.get(m, now) > now]
        return max(until) if until else None


def _method(error: SlackApiError) -> str:
    url = str(getattr(error.response, "api_url", "") or "")
    return url.rstrip("/").rsplit("/", 1)[-1] or "unknown"


def _retry_after(error: SlackApiError) -> timedelta | None:
    if error.response.status_code != 429:
        return None
    value = error.response.headers.get("Retry-After") or error.response.headers.get("retry-after")
    try:
        return timedelta(seconds=int(value)) if value is not None else timedelta(seconds=1)
    except (TypeError, ValueError):
        return timedelta(seconds=1)
