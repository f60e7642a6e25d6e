"""Two daemons' DM senders on one database, Slack slow: every DM goes out exactly once (issue 11 point 3)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from gpubot.core.models import GpuSample, HostSample
from gpubot.core.outbox import Outbox
from gpubot.core.policy import ClaimPolicy
from gpubot.core.selection import GpuSelection
from gpubot.core.service import ClaimService
from gpubot.slack.notice_sender import NoticeSender
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.system_clock import SystemClock
from tests.notices import pending_notices
from tests.slack.test_notifier import FakeSlack, fast_streak
from tests.storage.conftest import needs_postgres

GPUS = 8


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_postgres)])
def two_engines(request: pytest.FixtureRequest):
    if request.param == "sqlite":
        first: Engine = request.getfixturevalue("sqlite_engine")
        second = make_engine(request.getfixturevalue("sqlite_url"))
        yield first, second
        second.dispose()
    else:
        engine = request.getfixturevalue("postgres_engine")
        yield engine, engine


def test_two_senders_with_slack_slow_send_every_dm_exactly_once(two_engines) -> None:
    clock = SystemClock()
    stores = [SqlClaimStore(engine) for engine in two_engines]
    service = ClaimService(stores[0], clock, ClaimPolicy(admins=frozenset({"UADMIN"})), "box")
    service.sync_inventory(HostSample("box", None, tuple(GpuSample(i, f"GPU-{i}") for i in range(GPUS))))
    for i in range(GPUS):
        service.claim(f"U{i}", GpuSelection((str(i),)), "train", None)
    service.release("UADMIN", GpuSelection(tuple(str(i) for i in range(GPUS))))
    # Every post takes most of the bound, and the lease only a little longer than the bound.
    slack = FakeSlack(delay_s=0.35)
    senders = [
        NoticeSender(
            Outbox(store, clock, lease=timedelta(seconds=0.6)),
            slack,
            clock,
            ZoneInfo("UTC"),
            asyncio.Event(),
            failure_streak=fast_streak(),
            delivery_bound_s=0.5,
            concurrency=3,
        )
        for store in stores
    ]

    async def keep_sending(sender: NoticeSender) -> None:
        for _ in range(15):
            await sender.deliver_due()
            await asyncio.sleep(0.05)

    async def main() -> None:
        await asyncio.gather(*(keep_sending(sender) for sender in senders))

    asyncio.run(main())
    notice_ids = sorted(payload["notice_id"] for _, _, payload in slack.posted)
    assert notice_ids == list(range(1, GPUS + 1))
    assert pending_notices(stores[0], clock.now() + timedelta(hours=1)) == []
