"""`gpubot serve`: checks the tokens, builds the daemon (`wiring`), runs it until a signal, stops it in order."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aiohttp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from gpubot.core.errors import ConfigError
from gpubot.core.models import HostRole
from gpubot.daemon import wiring
from gpubot.daemon.health import Health
from gpubot.daemon.jobs import start_jobs
from gpubot.daemon.lifecycle import run_until_stopped
from gpubot.daemon.registration import HostRegistration
from gpubot.daemon.sampler import warn_of_namespaces
from gpubot.daemon.sd_notify import SystemdNotifier
from gpubot.daemon.waiting import stopped_within, within
from gpubot.daemon.watchdog import ServiceWatchdog, claim_counter
from gpubot.settings import Settings
from gpubot.slack.socket_mode import GuardedSocketModeHandler
from gpubot.slack.tasks import AfterAck
from gpubot.slack.web_session import web_api_session
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.fleet_store import this_process
from gpubot.storage.migrate import migrate_apart
from gpubot.storage.pg_notify import start_listening
from gpubot.storage.preflight import require_writable
from gpubot.system_clock import SystemClock
from gpubot.telemetry import open_configured

logger = logging.getLogger(__name__)

# A deferred DM is retried within this of its due time; a poll that finds nothing costs one short query.
_NOTICE_POLL = timedelta(seconds=1)
# The DM sender beats after every pass over the outbox (each `_NOTICE_POLL` while idle); passes that keep
# failing on the database stop the beats.
SENDER_HEARTBEAT = "dm-sender"
_SENDER_MAX_AGE_S = 60.0
_DRAIN_TIMEOUT_S = 2.0
# A due-work or telemetry run takes milliseconds; one still running at a stop gets this long, then is cancelled.
_JOB_DRAIN_TIMEOUT_S = 1.0
# Waiting for an unreachable Slack at start-up: 1 s, doubling to a try a minute.
_SLACK_RETRY_FIRST_S = 1.0
_SLACK_RETRY_LONGEST_S = 60.0
# Closing the Socket Mode connection is normally instant; never let it hold up the 10 s exit.
_CLOSE_TIMEOUT_S = 5.0
# slack_sdk's own per-call time-out, which it applies only to sessions it creates itself.
_WEB_API_TIMEOUT_S = 30.0


def run(settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT; returns the process exit code.

    Raises:
        ConfigError: Slack rejected a token.
        GpubotError: the database or telemetry cannot be brought up.
    """
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    # Periodic jobs declare a heartbeat with health.expect(name, max_age_s, loop.time()) and call
    # health.beat(name, loop.time()) per run.
    return await run_until_stopped(settings, functools.partial(_serve_until_stopped, settings))


async def _serve_until_stopped(
    settings: Settings, stack: contextlib.AsyncExitStack, notifier: SystemdNotifier, stop: asyncio.Event
) -> int:
    loop = asyncio.get_running_loop()
    health = Health()
    engine = make_engine(settings.database_url)
    stack.callback(engine.dispose)
    telemetry = open_configured(settings)
    stack.callback(telemetry.close)
    warn_of_namespaces(telemetry.backend_name)
    # One HTTP session, so Web API calls (Home publishes, DMs) reuse keep-alive connections: without it
    # slack_sdk opens a new session and TCP connection for every call
    # (BENCHMARKS.md, "What was changed to meet the targets").
    http = web_api_session(_WEB_API_TIMEOUT_S)
    stack.push_async_callback(http.close)

    # Slack first: a revoked token is a configuration error, reported before anything is written.
    api = AsyncWebClient(base_url=settings.slack_api_url, token=settings.slack_bot_token, session=http)
    identity = await _identify(api, stop)
    if identity is None or not await _check_app_token(api, settings.slack_app_token, stop):
        return 0
    # A read-only file or file system is one line naming it and exit 78, not a migration's traceback.
    await asyncio.to_thread(require_writable, engine)
    await asyncio.to_thread(migrate_apart, engine)
    # The DM sender delivers a queued notice at once, woken from whichever thread committed it. Only then:
    # most changes queue none, and an outbox look after every claim and release costs a thread hop and
    # a query each.
    notices_queued = asyncio.Event()

    def wake_sender() -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: the notice waits in the outbox
            loop.call_soon_threadsafe(notices_queued.set)

    # On PostgreSQL, a connection of its own that hears of every commit, so reads are answered from memory.
    notifications = start_listening(engine)
    if notifications is not None:
        stack.callback(notifications.close)
    store = SqlClaimStore(engine, on_notice_queued=wake_sender, notifications=notifications)
    # The first sample names the host, which the claim rules need before anything else can start.
    first = await asyncio.to_thread(telemetry.sample)
    # The host name is this process's before its GPUs are written under it, and before Slack connects.
    registration = None
    if settings.gpu_backend != "none":  # a serve instance without GPUs is no host of the fleet
        registration = HostRegistration(
            store,
            first.hostname,
            HostRole.SERVE,
            this_process(),
            SystemClock(),
            settings.host_timeout,
            on_lost=lambda: loop.call_soon_threadsafe(stop.set),
            usage=settings.usage_rule(),
        )
        if not await registration.take(stop):
            return 0
        stack.push_async_callback(registration.release)
        await asyncio.to_thread(registration.report, first)
    claims = wiring.claims(settings, store, telemetry, first, registration.report if registration else None)
    await asyncio.to_thread(claims.sampler.accept, first)
    # The trends of the last hour, as the hosts counted them: a restart or a takeover shows them at once.
    # Up to this minute, which the first sample, recorded below, is part of.
    until = claims.clock.now().replace(second=0, microsecond=0)
    minutes = await asyncio.to_thread(store.recent_minutes, until - claims.history.window, until)
    claims.history.seed(minutes, settings.telemetry_interval)
    if claims.read_fleet is not None:
        # The other hosts before the first command, so it answers for the whole fleet.
        for reported in await asyncio.to_thread(claims.read_fleet):
            claims.history.record(reported, claims.clock.now())
    claims.history.record(first, claims.clock.now())

    health.expect(SENDER_HEARTBEAT, _SENDER_MAX_AGE_S, loop.time())
    after_ack = AfterAck()
    slack = wiring.slack_side(
        settings,
        claims,
        api,
        identity,
        after_ack,
        notices_queued,
        sender_beat=lambda: health.beat(SENDER_HEARTBEAT, loop.time()),
    )
    rejected: list[str] = []

    def app_token_rejected(reason: str) -> None:
        # Slack refused the app token on a (re)connect: it was revoked. Stop rather than retry forever.
        rejected.append(reason)
        stop.set()

    handler = GuardedSocketModeHandler(
        slack.app,
        settings.slack_app_token,
        web_client=AsyncWebClient(base_url=settings.slack_api_url),
        on_rejected=app_token_rejected,
    )
    stack.push_async_callback(within, handler.close_async, _CLOSE_TIMEOUT_S)
    # Requests start work after their ack (a DM being updated, a Home tab being published): a moment to
    # finish before the connection closes.
    stack.push_async_callback(after_ack.drain, _DRAIN_TIMEOUT_S)
    # Raced against the stop signal: slack_sdk retries a failed connect forever, and SIGTERM must win.
    if not await _until_stopped(handler.connect_async(), stop):
        _raise_if_rejected(rejected)
        return 0
    logger.info(
        "connected to Slack as %s; %d GPUs on %s via %s",
        identity.bot_user_id,
        len(first.gpus),
        first.hostname,
        telemetry.backend_name,
    )

    watchdog = ServiceWatchdog(
        notifier,
        health,
        is_connected=handler.client.is_connected,
        count_claims=claim_counter(claims.service, store.check_file),
        watchdog_interval=settings.watchdog_interval,
    )
    background = [
        asyncio.create_task(slack.sender.run(_NOTICE_POLL)),
        # Sends READY=1 on its first check, the Socket Mode connection being up by now.
        asyncio.create_task(watchdog.run()),
    ]
    stack.push_async_callback(_cancel_and_wait, background, _DRAIN_TIMEOUT_S)
    # The jobs start after the tasks (neither task runs before the next await), so they stop before them:
    # a run still going at a stop gets _JOB_DRAIN_TIMEOUT_S, then is cancelled.
    jobs = start_jobs(
        slack.gateway,
        slack.home,
        claims.sampler,
        claims.history,
        claims.clock,
        settings.telemetry_interval,
        health,
        loop.time,
        claims.read_fleet,
        wiring.digest(settings, claims, api),
    )
    stack.push_async_callback(jobs.stop, _JOB_DRAIN_TIMEOUT_S)
    # Everything built so far (the imported libraries above all) lives as long as the process. Moved out
    # of the collector's sight, a full collection no longer walks it: those walks were the worst latency
    # anyone saw (BENCHMARKS.md, "What was changed to meet the targets").
    gc.freeze()
    await stop.wait()
    _raise_if_rejected(rejected)
    if registration is not None and registration.lost is not None:
        raise registration.lost
    logger.info("stopping")
    return 0


async def _cancel_and_wait(tasks: list[asyncio.Task[None]], timeout_s: float) -> None:
    """Cancel `tasks` and wait up to `timeout_s` for them to end."""
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=timeout_s)


async def _identify(api: AsyncWebClient, stop: asyncio.Event) -> AuthorizeResult | None:
    """Ask Slack who the bot is, waiting out an unreachable Slack (a host whose network comes up late).

    Returns:
        Who the bot is; None when asked to stop while waiting.

    Raises:
        ConfigError: Slack rejected the token: retrying cannot help.
    """
    response = await _call_slack(api.auth_test, stop, "SLACK_BOT_TOKEN", "a bot token Slack accepts (auth.test")
    if response is None:
        return None
    return AuthorizeResult(
        enterprise_id=response.get("enterprise_id"),
        team_id=response.get("team_id"),
        team=response.get("team"),
        url=response.get("url"),
        bot_user_id=response.get("user_id"),
        bot_id=response.get("bot_id"),
        bot_token=api.token,
    )


async def _check_app_token(api: AsyncWebClient, app_token: str, stop: asyncio.Event) -> bool:
    """Check once that Slack accepts the app-level token, as `gpubot doctor` does.

    Without this a rejected token only shows in slack_sdk's connect loop, as a traceback every 10 s,
    forever. The URL Slack hands out is not used: the handler asks for its own.

    Returns:
        False when asked to stop while waiting for Slack.

    Raises:
        ConfigError: Slack rejected the token (or it lacks connections:write).
    """

    async def open_connection() -> AsyncSlackResponse:
        return await api.apps_connections_open(app_token=app_token)

    expected = "an app-level token Slack accepts, with connections:write (apps.connections.open"
    return await _call_slack(open_connection, stop, "SLACK_APP_TOKEN", expected) is not None


async def _call_slack(
    call: Callable[[], Awaitable[AsyncSlackResponse]], stop: asyncio.Event, variable: str, expected: str
) -> AsyncSlackResponse | None:
    """Make a Web API call that checks a token, retrying while Slack is unreachable.

    Returns:
        The response; None when asked to stop while waiting.

    Raises:
        ConfigError: naming `variable`: Slack answered, and refused (retrying cannot help).
    """
    delay_s = _SLACK_RETRY_FIRST_S
    while True:
        try:
            return await call()
        except SlackApiError as error:
            status = error.response.status_code
            if status < 500 and status != 429:
                reason = error.response.get("error", "rejected")
                raise ConfigError(variable, f"{expected} said: {reason})") from None
            problem = f"HTTP {status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            problem = str(error) or type(error).__name__
        logger.warning("Slack is unreachable (%s); trying again in %.0f s", problem, delay_s)
        if await stopped_within(stop, delay_s):
            return None
        delay_s = min(delay_s * 2, _SLACK_RETRY_LONGEST_S)


def _raise_if_rejected(rejected: list[str]) -> None:
    """Turn Slack's rejection of the app token while running into the exit-78 configuration error.

    Raises:
        ConfigError: naming SLACK_APP_TOKEN, when `rejected` holds Slack's error code.
    """
    if rejected:
        logger.error("Slack rejected the app-level token (%s); stopping: replace SLACK_APP_TOKEN", rejected[0])
        raise ConfigError(
            "SLACK_APP_TOKEN", f"an app-level token Slack accepts (apps.connections.open said: {rejected[0]})"
        )


async def _until_stopped(work: Awaitable[None], stop: asyncio.Event) -> bool:
    """Run `work` until it finishes or `stop` is set, whichever comes first.

    Returns:
        True when `work` finished; False when `stop` came first (`work` is then cancelled).
    """
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done() and not stop.is_set():
        task.result()  # its exception, if any
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return False
