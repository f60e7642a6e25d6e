"""The Home tab: a rate-limited publish goes out after Retry-After, once, with the newest state."""

import asyncio
import logging
import time
from zoneinfo import ZoneInfo

from gpubot.core.errors import StoreBusy
from gpubot.core.history import UtilizationHistory
from gpubot.core.load import LoadThresholds
from gpubot.core.models import GpuSample, HostSample
from gpubot.core.policy import ClaimPolicy
from gpubot.core.service import ClaimService
from gpubot.core.slack_events import SlackEvents
from gpubot.slack.gateway import ServiceGateway
from gpubot.slack.home import HomeTab
from gpubot.slack.tasks import AfterAck
from tests.fakes import FakeClock, InMemoryClaimStore, usage_reports
from tests.slack.test_notifier import slack_error

SAMPLE = HostSample("box", None, (GpuSample(0, "GPU-0"),))


class RateLimitedViews:
    def __init__(self, limited: int) -> None:
        self.limited = limited
        self.published: list[str] = []

    async def views_publish(self, user_id, view):
        if self.limited:
            self.limited -= 1
            raise slack_error("views.publish", "ratelimited", status=429, retry_after=0)
        self.published.append(user_id)


def test_a_rate_limited_home_publish_is_retried_once_not_dropped_nor_piled_up():
    clock, store = FakeClock(), InMemoryClaimStore()
    service = ClaimService(store, clock, ClaimPolicy(), "box")
    service.sync_inventory(SAMPLE)
    client = RateLimitedViews(limited=2)
    after_ack = AfterAck()
    # It makes no change, so learns no names.
    gateway = ServiceGateway(
        service, lambda: SAMPLE, names=None, events=SlackEvents(store, clock), usage=usage_reports(store, clock)
    )
    home = HomeTab(gateway, client, UtilizationHistory(), ZoneInfo("UTC"), LoadThresholds(), after_ack)

    async def main():
        home.opened("U1", "Ev1")
        home.refresh_each(["U1"])  # queued behind the first: the same publish
        for _ in range(100):
            await asyncio.sleep(0.01)
        await after_ack.drain(1)

    asyncio.run(main())
    assert client.limited == 0
    assert client.published == ["U1"]


class SlowStore(InMemoryClaimStore):
    """Each recording of Home opens takes a while (a busy database); the first may fail."""

    def __init__(self, fail_first: bool = False) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.fail_first = fail_first

    def home_opened(self, opens, now, forget_before=None):
        time.sleep(0.05)
        self.batches.append([opened.user_id for opened in opens])
        if self.fail_first:
            self.fail_first = False
            raise StoreBusy()
        return super().home_opened(opens, now, forget_before)


def home_over(store: InMemoryClaimStore) -> tuple[HomeTab, RateLimitedViews, AfterAck]:
    clock = FakeClock()
    service = ClaimService(store, clock, ClaimPolicy(), "box")
    service.sync_inventory(SAMPLE)
    client = RateLimitedViews(limited=0)
    after_ack = AfterAck()
    gateway = ServiceGateway(
        service, lambda: SAMPLE, names=None, events=SlackEvents(store, clock), usage=usage_reports(store, clock)
    )
    return (
        HomeTab(gateway, client, UtilizationHistory(), ZoneInfo("UTC"), LoadThresholds(), after_ack),
        client,
        after_ack,
    )


def test_a_burst_of_home_opens_is_recorded_in_a_few_transactions_and_each_published_once():
    store = SlowStore()
    home, client, after_ack = home_over(store)
    people = [f"U{n:02d}" for n in range(20)]

    async def main():
        for user_id in people:
            home.opened(user_id, f"Ev{user_id}")
            await asyncio.sleep(0.005)  # they arrive while the first is being recorded
        home.opened("U00", "EvU00")  # Slack's retry of the first
        await after_ack.drain(5)

    asyncio.run(main())
    assert sorted(client.published) == people
    assert sorted(user_id for batch in store.batches for user_id in batch) == sorted([*people, "U00"])
    assert len(store.batches) <= 4


def test_home_opens_queued_behind_a_failed_recording_are_still_recorded_and_published(caplog):
    caplog.set_level(logging.WARNING, logger="gpubot")
    store = SlowStore(fail_first=True)
    home, client, after_ack = home_over(store)

    async def main():
        home.opened("U1", "Ev1")
        await asyncio.sleep(0.01)
        home.opened("U2", "Ev2")  # queued while the first batch fails
        await after_ack.drain(5)

    asyncio.run(main())
    assert store.batches == [["U1"], ["U2"]]
    assert client.published == ["U2"]
    assert "could not record 1 Home tab openings: The claim database is busy" in caplog.text
