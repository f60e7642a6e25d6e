"""`gpubot serve`: the composition root. Builds every adapter, connects to Slack, owns the signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from gpubot.core.errors import ConfigError, GpubotError
from gpubot.core.outbox import Outbox
from gpubot.core.service import ClaimPolicy, ClaimService
from gpubot.sampling import TelemetrySampler
from gpubot.settings import Settings
from gpubot.slack.app import build_app
from gpubot.slack.commands import SlashCommands
from gpubot.slack.notifier import NoticeSender
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import upgrade_to_head
from gpubot.system_clock import SystemClock
from gpubot.telemetry import open_backend

logger = logging.getLogger(__name__)

_NOTICE_POLL = timedelta(seconds=5)
# Closing the Socket Mode connection is normally instant; never let it hold up the 10 s exit.
_CLOSE_TIMEOUT_S = 5.0


def policy_from(settings: Settings) -> ClaimPolicy:
    """The claim rules the settings describe."""
    return ClaimPolicy(
        min_duration=settings.min_duration,
        max_duration=settings.max_duration,
        default_duration=settings.default_duration,
        admins=settings.admins,
    )


def run(settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT; returns the process exit code.

    Raises:
        ConfigError: Slack rejected a token.
        GpubotError: the database or telemetry cannot be brought up.
    """
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    engine = make_engine(settings.database_url)
    telemetry = open_backend(
        settings.gpu_backend, fake_gpus_path=settings.fake_gpus_path, nvidia_smi=settings.nvidia_smi
    )
    background: list[asyncio.Task[None]] = []
    handler: AsyncSocketModeHandler | None = None
    try:
        # Slack first: a revoked token is a configuration error, reported before anything is written.
        api = AsyncWebClient(base_url=settings.slack_api_url, token=settings.slack_bot_token)
        identity = await _identify(api)
        await asyncio.to_thread(upgrade_to_head, engine)
        store = SqlClaimStore(engine)
        clock = SystemClock()
        first = await asyncio.to_thread(telemetry.sample)
        service = ClaimService(store, clock, policy_from(settings), host=first.hostname)
        sampler = TelemetrySampler(telemetry, service.sync_inventory)
        await asyncio.to_thread(sampler.sample_once)
        sender = NoticeSender(Outbox(store, clock), api, settings.timezone)
        commands = SlashCommands(
            service,
            latest_sample=lambda: sampler.latest,
            timezone=settings.timezone,
            thresholds=settings.load_thresholds,
            after_change=sender.wake,
        )
        app = build_app(settings.slack_api_url, identity, commands)
        handler = AsyncSocketModeHandler(
            app, settings.slack_app_token, web_client=AsyncWebClient(base_url=settings.slack_api_url)
        )
        await handler.connect_async()
        logger.info(
            "connected to Slack as %s; %d GPUs on %s via %s",
            identity.bot_user_id,
            len(first.gpus),
            first.hostname,
            telemetry.backend_name,
        )
        background = [
            asyncio.create_task(_every(settings.telemetry_interval, lambda: asyncio.to_thread(sampler.sample_once))),
            asyncio.create_task(sender.run(_NOTICE_POLL)),
        ]
        await stop.wait()
        logger.info("stopping")
        return 0
    finally:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if handler is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(handler.close_async(), _CLOSE_TIMEOUT_S)
        telemetry.close()
        engine.dispose()


async def _identify(api: AsyncWebClient) -> AuthorizeResult:
    """Ask Slack who the bot is, once; a rejected token is a configuration error."""
    try:
        response = await api.auth_test()
    except SlackApiError as error:
        reason = error.response.get("error", "rejected")
        raise ConfigError("SLACK_BOT_TOKEN", f"a bot token Slack accepts (auth.test said: {reason})") from None
    return AuthorizeResult(
        enterprise_id=response.get("enterprise_id"),
        team_id=response.get("team_id"),
        team=response.get("team"),
        url=response.get("url"),
        bot_user_id=response.get("user_id"),
        bot_id=response.get("bot_id"),
        bot_token=api.token,
    )


async def _every(interval: timedelta, work: Callable[[], Awaitable[object]]) -> None:
    """Run `work` every `interval`, measured from the start of each run, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            await work()
        except GpubotError as error:
            logger.error("%s", error.message)
        await asyncio.sleep(max(interval.total_seconds() - (loop.time() - started), 0.0))
