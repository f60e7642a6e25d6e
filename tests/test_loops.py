"""Every background loop survives a database error: logged once per streak, retried, heartbeat only on success."""

import asyncio
import logging
from datetime import timedelta

from gpubot.core.models import GpuSample, HostSample, NoticeKind
from gpubot.core.policy import ClaimPolicy
from gpubot.core.selection import GpuSelection
from gpubot.core.service import ClaimService
from gpubot.core.streak import FailureStreak
from gpubot.daemon.health import Health
from gpubot.daemon.jobs import guarded
from gpubot.daemon.sampler import TelemetrySampler
from gpubot.telemetry.fake import FakeTelemetry
from tests.fakes import FakeClock, FlakyStore, InMemoryClaimStore

logger = logging.getLogger("tests.loops")
SAMPLE = HostSample("box", None, (GpuSample(0, "GPU-0"),))


class Monotonic:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_a_streak_logs_its_first_failure_and_its_recovery_only(caplog):
    streak = FailureStreak("job", logger, first_backoff_s=1, longest_backoff_s=5)
    with caplog.at_level(logging.INFO, logger="tests.loops"):
        delays = [streak.failed(RuntimeError("locked")) for _ in range(5)]
        streak.succeeded()
        streak.succeeded()
    assert delays == [1, 2, 4, 5, 5]
    assert [record.levelname for record in caplog.records] == ["ERROR", "INFO"]
    assert "locked" in caplog.records[0].getMessage()
    assert "recovered after 5" in caplog.records[1].getMessage()


def test_the_due_work_job_survives_a_database_error_and_warns_after_it_clears(caplog):
    clock, inner = FakeClock(), InMemoryClaimStore()
    store = FlakyStore(inner)
    service = ClaimService(store, clock, ClaimPolicy(warn_before=timedelta(minutes=15)), "box")
    service.sync_inventory(SAMPLE)
    service.claim("U1", GpuSelection(("0",)), "train", timedelta(minutes=30))
    clock.advance(timedelta(minutes=20))
    health, now_s = Health(), Monotonic()
    health.expect("due-work", 60, now_s())

    async def due_work() -> None:
        await asyncio.to_thread(service.process_due)

    job = guarded("due-work", due_work, health, now_s, logger)
    store.fail("claims_past_end", 3)
    with caplog.at_level(logging.INFO, logger="tests.loops"):
        for _ in range(3):
            asyncio.run(job())  # fails
            asyncio.run(job())  # backing off: not even tried
            assert store.failed_calls <= 3
            now_s.now_s += 60
        assert inner.pending_notices(clock.now()) == []
        now_s.now_s += 60
        assert not health.healthy(now_s())  # three failed runs and no beat
        asyncio.run(job())
    assert store.failed_calls == 3
    (warning,) = inner.pending_notices(clock.now())
    assert warning.notice.kind is NoticeKind.EXPIRY_WARNING
    assert health.healthy(now_s())
    assert [record.levelname for record in caplog.records] == ["ERROR", "INFO"]


def test_the_telemetry_job_survives_a_database_error_and_samples_after_it_clears(tmp_path, caplog):
    clock, inner = FakeClock(), InMemoryClaimStore()
    store = FlakyStore(inner)
    service = ClaimService(store, clock, ClaimPolicy(), "box")
    gpus = tmp_path / "gpus.json"
    gpus.write_text('{"hostname": "box", "gpus": [{"index": 0, "uuid": "GPU-0"}]}')
    sampler = TelemetrySampler(FakeTelemetry(gpus), service.sync_inventory)
    health, now_s = Health(), Monotonic()
    health.expect("telemetry", 60, now_s())

    async def sample_telemetry() -> None:
        await asyncio.to_thread(sampler.sample_once)

    job = guarded("telemetry", sample_telemetry, health, now_s, logger)
    store.fail("sync_gpus", 2)
    with caplog.at_level(logging.INFO, logger="tests.loops"):
        for _ in range(2):
            asyncio.run(job())
            now_s.now_s += 61
        assert inner.list_gpus("box") == []
        assert not health.healthy(now_s())
        asyncio.run(job())
    assert [gpu.uuid for gpu in inner.list_gpus("box")] == ["GPU-0"]
    assert sampler.latest is not None
    assert health.healthy(now_s())
    assert [record.levelname for record in caplog.records] == ["ERROR", "INFO"]


def test_the_sampler_reports_every_read_and_a_failed_one_as_none(tmp_path):
    gpus = tmp_path / "gpus.json"
    gpus.write_text('{"hostname": "box", "gpus": [{"index": 0, "uuid": "GPU-0"}]}')
    reported: list[HostSample | None] = []
    sampler = TelemetrySampler(FakeTelemetry(gpus), lambda sample: None, reported.append)
    first = sampler.sample_once()
    gpus.write_text("not json")
    assert sampler.sample_once() is None
    assert reported == [first, None] and first is not None and first.gpus[0].uuid == "GPU-0"
