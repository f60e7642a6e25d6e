"""The Home tab: a rate-limited publish goes out after Retry-After, once, with the newest state."""

import asyncio
from zoneinfo import ZoneInfo

from gpubot.core.history import UtilizationHistory
from gpubot.core.load import LoadThresholds
from gpubot.core.models import GpuSample, HostSample
from gpubot.core.policy import ClaimPolicy
from gpubot.core.service import ClaimService
from gpubot.core.slack_events import SlackEvents
from gpubot.slack.gateway import ServiceGateway
from gpubot.slack.home import HomeTab
from gpubot.slack.tasks import AfterAck
from tests.fakes import FakeClock, InMemoryClaimStore
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
    gateway = ServiceGateway(service, lambda: SAMPLE, names=None, events=SlackEvents(store, clock))
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
