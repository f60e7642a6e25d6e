"""The App Home tab: published for a person when they open it and after each thing they do."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from gpubot.core.dashboard import FleetHome, HomeState
from gpubot.core.errors import GpubotError
from gpubot.core.history import UtilizationHistory
from gpubot.core.load import LoadThresholds
from gpubot.core.usage_report import RecentUsage
from gpubot.slack import views
from gpubot.slack.blocks import Message
from gpubot.slack.gateway import ServiceGateway
from gpubot.slack.tasks import AfterAck

logger = logging.getLogger(__name__)

_PUBLISHES_IN_FLIGHT = 4


class HomeTab:
    """Publishes Home views with `views.publish`, at most one in flight per person.

    Only people who opened their Home tab lately (through any daemon: the database says who) get
    republished after a change, and only once per change: no call is spent on a view nobody looks at, and
    no telemetry tick republishes anything (views.publish is rate limited per workspace).
    """

    def __init__(
        self,
        gateway: ServiceGateway,
        client: AsyncWebClient,
        history: UtilizationHistory,
        timezone: ZoneInfo,
        thresholds: LoadThresholds,
        after_ack: AfterAck,
    ) -> None:
        self._gateway = gateway
        self._client = client
        self._history = history
        self._timezone = timezone
        self._thresholds = thresholds
        self._after_ack = after_ack
        # Home opens (person, Slack's event id) waiting to be recorded, and whether a task is recording them.
        self._opens: list[tuple[str, object]] = []
        self._recording_opens = False
        # In a fleet: the host each person picked to see in full (kept in memory, like who has the tab open).
        self._expanded: dict[str, str] = {}
        # Loop time before which no views.publish goes out (Slack's Retry-After after a 429).
        self._limited_until_s = 0.0
        self._pending: dict[str, Message | None] = {}
        # Views are built (and held until Slack answers) a few at a time. Building them is CPU work, so a queue costs no
        # throughput, while a burst built at once held all its view dicts, memory the allocator then kept (see
        # BENCHMARKS.md, 'What was changed to meet the targets'); a queued publish also reads the newest state when its
        # turn comes.
        self._publishing = asyncio.Semaphore(_PUBLISHES_IN_FLIGHT)

    def opened(self, user_id: str, event_id: object) -> None:
        """The person opened the Home tab: publish it, unless this event (Slack's `event_id`) was handled already."""
        self._opens.append((user_id, event_id))
        if not self._recording_opens:
            self._recording_opens = True
            self._after_ack.spawn(self._record_opens(), "recording the Home tabs opened")

    async def _record_opens(self) -> None:
        # Recorded before the publish, since Slack may hand its retry of the event to another daemon meanwhile. One
        # transaction records every open that arrived while the last one ran: a burst of opens costs a few writes,
        # not one each queued behind the other.
        try:
            while self._opens:
                opens, self._opens = self._opens, []
                try:
                    new = await self._gateway.home_opened(opens)
                except GpubotError as error:  # the database stayed busy: these go unpublished, the next ones try
                    logger.warning("could not record %d Home tab openings: %s", len(opens), error.message)
                    continue
                for user_id in new:
                    self._refresh(user_id)
        finally:
            self._recording_opens = False

    def refresh_each(self, concerned: Iterable[str], acted: str | None = None, flash: Message | None = None) -> None:
        """Republish the Home of each person a change concerned, once each; the one who `acted` sees `flash`."""
        people = set(concerned) | ({acted} if acted is not None else set())
        if people:
            self._after_ack.spawn(self._refresh_viewers(people, acted, flash), "republishing Home tabs after a change")

    async def _refresh_viewers(self, people: set[str], acted: str | None, flash: Message | None) -> None:
        # Read when something changed, never on a command's path: the change already costs a publish.
        for user_id in await self._gateway.home_viewers(people):
            self._refresh(user_id, flash if user_id == acted else None)

    def show_host(self, user_id: str, host: str) -> None:
        """The person picked a host in the Home tab's menu: republish it with that host's GPUs in full."""
        self._expanded[user_id] = host
        self._refresh(user_id)

    def _refresh(self, user_id: str, flash: Message | None = None) -> None:
        """Republish the person's Home, showing `flash` at the top."""
        if user_id in self._pending:
            # A publish is already queued: it will read the newest state; keep the newest flash.
            self._pending[user_id] = flash or self._pending[user_id]
            return
        self._pending[user_id] = flash
        self._after_ack.spawn(self._publish(user_id), f"publishing the Home tab of {user_id}")

    async def _publish(self, user_id: str) -> None:
        async with self._publishing:
            # views.publish is rate limited per workspace: after a 429 no publish goes out before Retry-After.
            wait_s = self._limited_until_s - asyncio.get_running_loop().time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            # Read before taking the refresh off the queue: a change meanwhile is still this publish's.
            recent = await self._gateway.recent_usage(user_id)
            flash = self._pending.pop(user_id, None)
            try:
                await self._publish_now(user_id, flash, recent)
            except SlackApiError as error:
                if error.response.status_code != 429:
                    raise
                retry_after_s = _retry_after_s(error)
                loop_now = asyncio.get_running_loop().time()
                self._limited_until_s = max(self._limited_until_s, loop_now + retry_after_s)
                logger.info("views.publish rate limited; the Home of %s goes out in %.0f s", user_id, retry_after_s)
                # Published again after the wait, reading the newest state then; a refresh queued meanwhile
                # is that same publish (its newer flash wins), so nothing piles up.
                if user_id not in self._pending:
                    self._pending[user_id] = flash
                    self._after_ack.spawn(self._publish(user_id), f"publishing the Home tab of {user_id} again")

    async def _publish_now(self, user_id: str, flash: Message | None, recent: RecentUsage) -> None:
        state = await self._gateway.home(user_id, self._expanded.get(user_id))
        shown = state.expanded if isinstance(state, FleetHome) else state.dashboard
        rows = shown.rows if shown is not None else ()
        trends = {row.gpu.uuid: self._history.trend(row.gpu.uuid, _state_now(state)) for row in rows}
        view = views.home_view(state, self._gateway.policy, self._timezone, self._thresholds, trends, flash, recent)
        await self._client.views_publish(user_id=user_id, view=view)


def _state_now(state: HomeState | FleetHome) -> datetime:
    """The instant a Home state was read at."""
    return state.fleet.now if isinstance(state, FleetHome) else state.dashboard.now


def _retry_after_s(error: SlackApiError) -> float:
    value = error.response.headers.get("Retry-After") or error.response.headers.get("retry-after")
    try:
        return max(float(value), 0.0) if value is not None else 1.0
    except (TypeError, ValueError):
        return 1.0
