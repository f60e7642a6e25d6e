"""What `gpubot serve` is made of: the core's services over the store and telemetry, and the Slack side.

Construction only: nothing here connects, waits or starts a task; `gpubot.daemon.serve` does that, in
order, and owns every resource's cleanup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from gpubot.core.digest import WeeklyDigest
from gpubot.core.history import UtilizationHistory
from gpubot.core.models import HostSample
from gpubot.core.outbox import Outbox
from gpubot.core.people import PeopleDirectory
from gpubot.core.ports import Telemetry
from gpubot.core.service import ClaimService
from gpubot.core.slack_events import SlackEvents
from gpubot.core.usage_report import UsageReports
from gpubot.daemon.digest_job import digest_tick
from gpubot.daemon.sampler import TelemetrySampler
from gpubot.settings import Settings
from gpubot.slack.app import build_app
from gpubot.slack.digest import DigestPoster
from gpubot.slack.dm import DirectMessages
from gpubot.slack.gateway import ServiceGateway
from gpubot.slack.home import HomeTab
from gpubot.slack.interactions import Interactions
from gpubot.slack.notice_sender import NoticeSender
from gpubot.slack.people import SlackNames
from gpubot.slack.slash_commands import SlashCommands
from gpubot.slack.tasks import AfterAck
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.system_clock import SystemClock


@dataclass(frozen=True)
class Claims:
    """The claim rules over the database and the GPUs.

    `read_fleet` hands the claim service the fleet's latest host reports (blocking; the telemetry job runs it each
    interval); None while the store keeps no hosts.
    """

    store: SqlClaimStore
    clock: SystemClock
    service: ClaimService
    sampler: TelemetrySampler
    history: UtilizationHistory
    read_fleet: Callable[[], Sequence[HostSample]] | None = None


@dataclass(frozen=True)
class SlackSide:
    """What Slack reaches: the Bolt app, the Home tab and the DM sender, over one gateway to the service."""

    app: AsyncApp
    gateway: ServiceGateway
    home: HomeTab
    sender: NoticeSender


def claims(
    settings: Settings,
    store: SqlClaimStore,
    telemetry: Telemetry,
    first: HostSample,
    report: Callable[[HostSample | None], object] | None = None,
) -> Claims:
    """The claim service for the host that `first` (the first sample) names, and the sampler that feeds it.

    `report` is called with each later sample, in the sampler's thread: the host's report to the fleet.
    """
    clock = SystemClock()
    service = ClaimService(
        store, clock, settings.claim_policy(), host=first.hostname, host_timeout=settings.host_timeout
    )
    sampler = TelemetrySampler(telemetry, service.sync_inventory, report)
    return Claims(store, clock, service, sampler, UtilizationHistory(), lambda: service.fleet_reported(store.hosts()))


def slack_side(
    settings: Settings,
    claims: Claims,
    api: AsyncWebClient,
    identity: AuthorizeResult,
    after_ack: AfterAck,
    notices_queued: asyncio.Event,
    sender_beat: Callable[[], None],
) -> SlackSide:
    """The Bolt app and everything it calls, the DM sender among them."""
    timezone: ZoneInfo = settings.timezone
    dms = DirectMessages(api)
    outbox = Outbox(claims.store, claims.clock)
    sender = NoticeSender(
        outbox,
        dms,
        claims.clock,
        timezone,
        notices_queued,
        beat=sender_beat,
        several_hosts=claims.service.several_hosts,
    )
    # Names for what cannot render a mention (the host CLI, the claim form's errors), kept in the database.
    names = SlackNames(PeopleDirectory(claims.store, claims.clock), api, after_ack)
    sampler = claims.sampler
    events = SlackEvents(claims.store, claims.clock)
    usage = UsageReports(
        claims.store,
        claims.store,
        claims.store.list_gpus,
        claims.clock,
        timezone,
        settings.admins,
        settings.usage_visibility,
    )
    gateway = ServiceGateway(
        claims.service, lambda: sampler.latest, names, claims.store.answering_from_memory, events=events, usage=usage
    )
    home = HomeTab(gateway, api, claims.history, timezone, settings.load_thresholds, after_ack)
    interactions = Interactions(gateway, api, dms, home, names, timezone)
    commands = SlashCommands(gateway, home, timezone, settings.load_thresholds)
    app = build_app(settings.slack_api_url, identity, commands, interactions, home, after_ack)
    return SlackSide(app, gateway, home, sender)


def digest(settings: Settings, claims: Claims, api: AsyncWebClient) -> Callable[[], Awaitable[None]] | None:
    """The weekly digest's job where GPUBOT_DIGEST_CHANNEL is set; None where it is not."""
    if settings.digest_channel is None:
        return None
    store, clock = claims.store, claims.clock
    weekly = WeeklyDigest(store, store, clock, settings.digest_schedule, settings.digest_channel)
    return digest_tick(weekly.take_due, DigestPoster(api, store, clock), PeopleDirectory(store, clock))
