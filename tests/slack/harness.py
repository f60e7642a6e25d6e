"""The real Bolt app (`build_app`) in this process, against the stand-in's Web API.

A request goes in the way the Socket Mode adapter hands it over (`async_dispatch`), so a listener bug fails
the test with its traceback, where a child process would only show a missing reply. The service is real,
over an in-memory store, with four GPUs on host "box".
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from gpubot.core.history import UtilizationHistory
from gpubot.core.load import LoadThresholds
from gpubot.core.models import GpuSample, HostSample
from gpubot.core.outbox import Outbox
from gpubot.core.people import PeopleDirectory
from gpubot.core.policy import ClaimPolicy
from gpubot.core.selection import GpuSelection
from gpubot.core.service import ClaimService
from gpubot.core.slack_events import SlackEvents
from gpubot.slack.app import build_app
from gpubot.slack.dm import DirectMessages
from gpubot.slack.gateway import ServiceGateway
from gpubot.slack.home import HomeTab
from gpubot.slack.interactions import Interactions
from gpubot.slack.notice_sender import NoticeSender
from gpubot.slack.people import SlackNames
from gpubot.slack.slash_commands import SlashCommands
from gpubot.slack.tasks import AfterAck
from gpubot.standin import SlackStandin
from gpubot.standin import payloads as p
from tests.fakes import FakeClock, InMemoryClaimStore, usage_reports

SAMPLE = HostSample("box", None, tuple(GpuSample(i, f"GPU-{i}", name="H100") for i in range(4)))


@dataclass(frozen=True)
class Answer:
    """What the app answered one request with: the ack's status and body, and how long it took."""

    status: int
    body: Any
    took_s: float


class InProcessApp:
    """One gpubot as `daemon.py` wires it, minus the Socket Mode connection and the scheduler."""

    def __init__(
        self,
        slack: SlackStandin,
        service_type: type[ClaimService] = ClaimService,
        policy: ClaimPolicy | None = None,
        sample: HostSample = SAMPLE,
        store: Any = None,
    ) -> None:
        # Several apps given one store are several daemons on one database.
        self.store = InMemoryClaimStore() if store is None else store
        self.clock = FakeClock()
        self.service = service_type(self.store, self.clock, policy or ClaimPolicy(), "box")
        self.service.sync_inventory(sample)
        client = AsyncWebClient(base_url=slack.api_url, token=slack.bot_token)
        self.after_ack = AfterAck()
        zone = ZoneInfo("UTC")
        names = SlackNames(PeopleDirectory(self.store, self.clock), client, self.after_ack)
        self.gateway = ServiceGateway(
            self.service,
            lambda: sample,
            names,
            events=SlackEvents(self.store, self.clock),
            usage=usage_reports(self.store, self.clock),
        )
        self.home = HomeTab(self.gateway, client, UtilizationHistory(), zone, LoadThresholds(), self.after_ack)
        dms = DirectMessages(client)
        interactions = Interactions(self.gateway, client, dms, self.home, names, zone)
        self.sender = NoticeSender(
            Outbox(self.store, self.clock),
            dms,
            self.clock,
            zone,
            asyncio.Event(),
            several_hosts=self.service.several_hosts,
        )
        commands = SlashCommands(self.gateway, self.home, zone, LoadThresholds())
        identity = AuthorizeResult(
            enterprise_id=None,
            team_id=p.TEAM_ID,
            bot_user_id=p.BOT_USER_ID,
            bot_id=p.BOT_ID,
            bot_token=slack.bot_token,
        )
        self.app: AsyncApp = build_app(slack.api_url, identity, commands, interactions, self.home, self.after_ack)

    def hold(self, user_id: str, gpu: int, purpose: str = "a run", hours: float = 2) -> int:
        """Give `user_id` a claim on `gpu` directly through the service; returns the claim's id."""
        outcome = ClaimService.claim(
            self.service, user_id, GpuSelection(labels=(str(gpu),)), purpose, timedelta(hours=hours)
        )
        return outcome.claims[0].id

    async def deliver_notices(self) -> int:
        """Send the DMs the changes so far queued, as the daemon's DM sender would; how many Slack took."""
        return await self.sender.deliver_due()

    async def dispatch(self, body: Any, settle_s: float = 5.0) -> Answer:
        """Hand the app one request, then let the work after the ack (Web API calls) finish."""
        started = time.monotonic()
        response = await self.app.async_dispatch(AsyncBoltRequest(mode="socket_mode", body=body))
        took_s = time.monotonic() - started
        await self.after_ack.drain(settle_s)
        return Answer(response.status, json.loads(response.body) if response.body else None, took_s)
