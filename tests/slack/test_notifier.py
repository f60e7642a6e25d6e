"""The DM sender: delivery through the outbox, surviving database errors, never losing or doubling a DM."""

import asyncio
import logging
from datetime import timedelta
from zoneinfo import ZoneInfo

from gpubot.core.commands import GpuSelection
from gpubot.core.models import GpuSample, HostSample
from gpubot.core.outbox import Outbox
from gpubot.core.service import ClaimPolicy, ClaimService
from gpubot.loops import FailureStreak
from gpubot.slack.notifier import NoticeSender
from tests.fakes import FakeClock, FlakyStore, InMemoryClaimStore

UTC = ZoneInfo("UTC")
SAMPLE = HostSample("box", None, (GpuSample(0, "GPU-0"), GpuSample(1, "GPU-1"), GpuSample(2, "GPU-2")))


class RecordingDms:
    """DirectMessages that records what it posts."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, user_id, message, **_):
        self.sent.append((user_id, message.text))


def fast_streak() -> FailureStreak:
    return FailureStreak(
        "DM sender", logging.getLogger("gpubot.slack.notifier"), first_backoff_s=0.01, longest_backoff_s=0.02
    )


def released_by_admin(store, clock, gpus=(0,)):
    """A service on `store` whose admin force-released U1's claims: one FORCE_RELEASED notice per GPU."""
    service = ClaimService(store, clock, ClaimPolicy(admins=frozenset({"UADMIN"})), "box")
    service.sync_inventory(SAMPLE)
    service.claim("U1", GpuSelection(tuple(gpus)), "train", None)
    service.release("UADMIN", GpuSelection(tuple(gpus)))
    return service


async def until(predicate, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_the_sender_survives_a_database_error_and_delivers_after_it_clears(caplog):
    clock, inner = FakeClock(), InMemoryClaimStore()
    released_by_admin(inner, clock)
    store = FlakyStore(inner)
    store.fail("lease_notices", 4)
    dms, beats = RecordingDms(), []
    sender = NoticeSender(
        Outbox(store, clock),
        dms,
        clock,
        UTC,
        asyncio.Event(),
        beat=lambda: beats.append(1),
        failure_streak=fast_streak(),
    )

    async def main():
        task = asyncio.create_task(sender.run(timedelta(milliseconds=10)))
        try:
            await until(lambda: dms.sent and beats)
        finally:
            task.cancel()

    with caplog.at_level(logging.INFO, logger="gpubot.slack.notifier"):
        asyncio.run(main())
    assert dms.sent == [("U1", "Your claim on GPU 0 was released")]
    assert store.failed_calls == 4
    messages = [record.getMessage() for record in caplog.records]
    assert sum("DM sender failed" in m for m in messages) == 1
    assert sum("DM sender recovered after 4" in m for m in messages) == 1


def test_the_sender_beats_while_idle_and_not_while_the_database_fails():
    clock, inner = FakeClock(), InMemoryClaimStore()
    store = FlakyStore(inner)
    dms, beats = RecordingDms(), []
    sender = NoticeSender(
        Outbox(store, clock),
        dms,
        clock,
        UTC,
        asyncio.Event(),
        beat=lambda: beats.append(1),
        failure_streak=fast_streak(),
    )

    async def main():
        task = asyncio.create_task(sender.run(timedelta(milliseconds=10)))
        try:
            await until(lambda: len(beats) >= 3)  # idle, and beating
            store.fail("lease_notices", 10**6)
            await asyncio.sleep(0.05)
            silent_from = len(beats)
            await asyncio.sleep(0.2)
            assert len(beats) == silent_from
            store.fail("lease_notices", 0)
            await until(lambda: len(beats) > silent_from)
        finally:
            task.cancel()

    asyncio.run(main())
