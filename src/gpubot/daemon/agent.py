"""`gpubot agent`: a GPU host of the fleet that reports its telemetry to the database and talks to no Slack.

It registers the host name, then every GPUBOT_TELEMETRY_INTERVAL samples the GPUs and reports them (one UPDATE),
syncing the host's GPUs for the claims whenever they change; the `gpubot serve` instances answer Slack for it from
the database. systemd hears READY=1 after the first report and a watchdog ping after every report that went
through. SIGTERM or SIGINT stops it cleanly, releasing the name so a successor starts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from gpubot.core.errors import ConfigError
from gpubot.core.models import HostRole
from gpubot.core.service import ClaimService
from gpubot.core.streak import FailureStreak
from gpubot.daemon.lifecycle import run_until_stopped
from gpubot.daemon.registration import HostRegistration
from gpubot.daemon.sampler import TelemetrySampler, warn_of_namespaces
from gpubot.daemon.sd_notify import SystemdNotifier
from gpubot.daemon.waiting import stopped_within
from gpubot.settings import Settings
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.fleet_store import this_process
from gpubot.storage.migrate import migrate_apart
from gpubot.storage.preflight import require_writable
from gpubot.system_clock import SystemClock
from gpubot.telemetry import open_configured

logger = logging.getLogger(__name__)


def run(settings: Settings) -> int:
    """Report this host's GPUs until SIGTERM or SIGINT; returns the process exit code.

    Raises:
        ConfigError: GPUBOT_GPU_BACKEND is `none` (an agent is a GPU host).
        HostNameTaken: another live process reports for this host name.
        GpubotError: the database or telemetry cannot be brought up.
    """
    if settings.gpu_backend == "none":
        raise ConfigError(
            "GPUBOT_GPU_BACKEND", "a GPU backend (auto, nvml, nvidia-smi, fake): an agent reports its host's GPUs"
        )
    return asyncio.run(_agent(settings))


async def _agent(settings: Settings) -> int:
    return await run_until_stopped(settings, functools.partial(_report_until_stopped, settings))


async def _report_until_stopped(
    settings: Settings, stack: contextlib.AsyncExitStack, notifier: SystemdNotifier, stop: asyncio.Event
) -> int:
    loop = asyncio.get_running_loop()
    engine = make_engine(settings.database_url)
    stack.callback(engine.dispose)
    telemetry = open_configured(settings)
    stack.callback(telemetry.close)
    warn_of_namespaces(telemetry.backend_name)
    await asyncio.to_thread(require_writable, engine)
    await asyncio.to_thread(migrate_apart, engine)
    store = SqlClaimStore(engine)
    clock = SystemClock()
    first = await asyncio.to_thread(telemetry.sample)
    registration = HostRegistration(
        store,
        first.hostname,
        HostRole.AGENT,
        this_process(),
        clock,
        settings.host_timeout,
        on_lost=lambda: loop.call_soon_threadsafe(stop.set),
        usage=settings.usage_rule(),
    )
    if not await registration.take(stop):
        return 0
    stack.push_async_callback(registration.release)
    # The claim rules need the host's GPUs in the database, as the serve instances' own hosts have theirs.
    service = ClaimService(store, clock, settings.claim_policy(), host=first.hostname)
    sampler = TelemetrySampler(telemetry, service.sync_inventory, registration.report)
    await asyncio.to_thread(sampler.accept, first)
    if await asyncio.to_thread(registration.report, first):
        status = f"reporting {len(first.gpus)} GPUs of {first.hostname} to the database as agent"
        logger.info("reporting %d GPUs of %s to DB as agent", len(first.gpus), first.hostname)
        notifier.ready(status)
        await _report_every_interval(settings, sampler, registration, notifier, stop)
    if registration.lost is not None:
        raise registration.lost
    logger.info("stopping")
    return 0


async def _report_every_interval(
    settings: Settings,
    sampler: TelemetrySampler,
    registration: HostRegistration,
    notifier: SystemdNotifier,
    stop: asyncio.Event,
) -> None:
    """Sample and report every interval until stopped or the name is lost; ping the watchdog after each report.

    A report that fails (a locked or unreachable database) is logged once per streak and retried at the next
    interval; while they fail, the pings stop, so systemd restarts an agent whose database stays away.
    """
    loop = asyncio.get_running_loop()
    interval_s = settings.telemetry_interval.total_seconds()
    streak = FailureStreak("report", logger)
    next_at = loop.time()
    while registration.lost is None:
        # Drift-free, and a run that overran its interval is not caught up on (coalesced, as the jobs are).
        next_at = max(next_at + interval_s, loop.time())
        if await stopped_within(stop, max(next_at - loop.time(), 0.0)):
            return
        try:
            await asyncio.to_thread(sampler.sample_once)
        except Exception as error:  # any one failure: the next report may well go through
            streak.failed(error)
            continue
        streak.succeeded()
        if registration.lost is None and settings.watchdog_interval is not None:
            notifier.watchdog()
