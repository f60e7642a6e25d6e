"""The daemon reads the fleet's host reports in the background, so commands answer for every host from memory."""

import asyncio
from datetime import timedelta
from typing import Any

from gpubot.core.history import UtilizationHistory
from gpubot.core.models import GpuSample, HostRole, HostSample
from gpubot.core.outcomes import DueReport
from gpubot.core.service import ClaimService
from gpubot.daemon import wiring
from gpubot.daemon.health import Health
from gpubot.daemon.jobs import start_jobs
from gpubot.daemon.sampler import TelemetrySampler
from gpubot.settings import Settings
from gpubot.slack.gateway import Change
from gpubot.system_clock import SystemClock
from tests.fakes import FakeClock, InMemoryClaimStore

BOX = HostSample("box", "550", (GpuSample(0, "GPU-0", name="H100"),))
BOX_2 = HostSample("box-2", "550", (GpuSample(0, "B2-0", name="A100"), GpuSample(1, "B2-1", name="A100")))


class StaticTelemetry:
    backend_name = "static"

    def sample(self) -> HostSample:
        return BOX

    def close(self) -> None:
        pass


class NoDueWork:
    async def process_due(self) -> Change[DueReport]:
        return Change(DueReport(), frozenset())


def a_fleet(clock: FakeClock) -> InMemoryClaimStore:
    store = InMemoryClaimStore()
    store.register_host("box-2", HostRole.AGENT, "agent-1", "pid 1 on box-2", clock.now(), timedelta(seconds=30))
    assert store.report("box-2", "agent-1", BOX_2, clock.now())
    return store


def test_the_daemon_wires_the_stores_fleet_into_the_claim_service() -> None:
    # The daemon's service runs on the system clock: the report must be recent by it.
    clock = FakeClock(SystemClock().now())
    settings = Settings.from_env({}, require_tokens=False)
    claims = wiring.claims(settings, a_fleet(clock), StaticTelemetry(), BOX)  # type: ignore[arg-type]
    claims.service.sync_inventory(BOX)
    assert claims.service.fleet(BOX).names == ("box",)
    assert claims.read_fleet is not None
    claims.read_fleet()
    fleet = claims.service.fleet(BOX)
    assert fleet.names == ("box", "box-2") and len(fleet.host("box-2").rows) == 2


def test_the_telemetry_job_reads_the_fleet_after_each_sample() -> None:
    # The scheduler runs on the wall clock: a first run days back would make it count every run missed since.
    clock = FakeClock(SystemClock().now())
    store = a_fleet(clock)
    service = ClaimService(store, clock, Settings.from_env({}, require_tokens=False).claim_policy(), "box")
    sampler = TelemetrySampler(StaticTelemetry(), service.sync_inventory)
    reads: list[int] = []

    def read_fleet() -> None:
        service.fleet_reported(store.hosts())
        reads.append(1)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        gateway: Any = NoDueWork()
        jobs = start_jobs(
            gateway, Any, sampler, UtilizationHistory(), clock, timedelta(seconds=0.05), Health(), loop.time, read_fleet
        )
        for _ in range(100):
            if reads:
                break
            await asyncio.sleep(0.02)
        await jobs.stop(1.0)

    asyncio.run(main())
    assert reads and service.fleet(sampler.latest).names == ("box", "box-2")
