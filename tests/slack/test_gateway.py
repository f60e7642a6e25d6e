"""`ServiceGateway`: where each call from Slack runs, how long an ack waits for it, and whom a change concerns."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest

from gpubot.core.errors import GpubotError
from gpubot.core.models import Gpu
from gpubot.core.policy import ClaimPolicy
from gpubot.core.selection import GpuSelection
from gpubot.core.service import ClaimService
from gpubot.core.slack_events import SlackEvents
from gpubot.slack import gateway as gateway_module
from gpubot.slack.gateway import ServiceGateway
from tests.fakes import FakeClock, InMemoryClaimStore, usage_reports
from tests.slack.harness import SAMPLE

ADMIN = "U0ADMIN"


class WatchedStore(InMemoryClaimStore):
    """Records the thread of each GPU listing (every read and change makes one), and may stall it."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []
        self.delay_s = 0.0

    def list_gpus(self, host: str | None = None) -> list[Gpu]:
        self.threads.append(threading.get_ident())
        time.sleep(self.delay_s)
        return super().list_gpus(host)


class Names:
    def __init__(self) -> None:
        self.learned: list[set[str]] = []

    def learn(self, user_ids: Iterable[str]) -> None:
        self.learned.append(set(user_ids))


@contextmanager
def answering(in_memory: bool) -> Iterator[bool]:
    yield in_memory


def make(from_memory: bool | None = None) -> tuple[ServiceGateway, WatchedStore, Names]:
    store, clock = WatchedStore(), FakeClock()
    service = ClaimService(store, clock, ClaimPolicy(admins=frozenset({ADMIN})), "box")
    service.sync_inventory(SAMPLE)
    names = Names()
    events = SlackEvents(store, clock)
    if from_memory is None:
        gateway = ServiceGateway(service, lambda: SAMPLE, names, events=events, usage=usage_reports(store, clock))
    else:
        gateway = ServiceGateway(
            service,
            lambda: SAMPLE,
            names,
            lambda: answering(from_memory),
            events=events,
            usage=usage_reports(store, clock),
        )
    return gateway, store, names


def on_loop(store: WatchedStore, loop_thread: int) -> list[bool]:
    return [thread == loop_thread for thread in store.threads]


@pytest.mark.parametrize("in_ack", [True, False])
def test_a_read_the_store_answers_from_memory_runs_on_the_event_loop(in_ack: bool) -> None:
    gateway, store, _ = make(from_memory=True)

    async def main() -> list[bool]:
        fleet = await gateway.fleet(in_ack=in_ack)
        assert len(fleet.hosts[0].rows) == 4 and fleet.hosts[0].sample is SAMPLE
        await gateway.home("U1")
        return on_loop(store, threading.get_ident())

    assert asyncio.run(main()) == [True, True]


@pytest.mark.parametrize("from_memory", [False, None])
def test_any_other_read_runs_in_a_thread(from_memory: bool | None) -> None:
    gateway, store, _ = make(from_memory)

    async def main() -> list[bool]:
        await gateway.fleet(in_ack=True)
        await gateway.fleet(in_ack=False)
        await gateway.home("U1")
        return on_loop(store, threading.get_ident())

    assert asyncio.run(main()) == [False, False, False]


def test_a_change_runs_in_a_thread_even_when_reads_could_come_from_memory() -> None:
    gateway, store, _ = make(from_memory=True)

    async def main() -> list[bool]:
        claimed = await gateway.claim("U1", GpuSelection(labels=("1",)), "train", timedelta(hours=1))
        await gateway.extend("U1", GpuSelection(labels=("1",)), timedelta(hours=1))
        await gateway.release_claim("U1", claimed.outcome.claims[0].id)
        return on_loop(store, threading.get_ident())

    assert not any(asyncio.run(main()))


def test_an_answer_for_an_ack_that_would_wait_too_long_is_cut_short(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway_module, "ACK_DEADLINE_S", 0.1)
    gateway, store, _ = make(from_memory=False)
    store.delay_s = 0.3

    async def main() -> None:
        with pytest.raises(GpubotError, match="answering slowly"):
            await gateway.fleet(in_ack=True)
        with pytest.raises(GpubotError, match="answering slowly"):
            await gateway.claim("U1", GpuSelection(labels=("1",)), "train", None)
        await gateway.fleet(in_ack=False)  # after the ack: waits
        await gateway.home("U1")

    asyncio.run(main())


def test_a_change_concerns_the_caller_and_everyone_force_released_and_learns_their_names() -> None:
    gateway, _, names = make()

    async def main() -> None:
        await gateway.claim("U1", GpuSelection(labels=("0",)), "train", None)
        await gateway.claim_from_form("U2", GpuSelection(labels=("1",)), "eval", timedelta(hours=1))
        released = await gateway.release(ADMIN, GpuSelection(labels=("0", "1")))
        assert released.concerned == {ADMIN, "U1", "U2"}
        with pytest.raises(GpubotError):
            await gateway.release("U1", None)  # holds nothing now: no change, no one concerned

    asyncio.run(main())
    assert names.learned == [{"U1"}, {"U2"}, {ADMIN, "U1", "U2"}]


def test_the_claim_form_queues_its_confirmation_as_a_dm_and_the_command_does_not() -> None:
    gateway, store, _ = make()

    async def main() -> None:
        await gateway.claim("U1", GpuSelection(labels=("0",)), "train", None)
        await gateway.claim_from_form("U2", GpuSelection(labels=("1",)), "eval", timedelta(hours=1))

    asyncio.run(main())
    far = FakeClock().now() + timedelta(days=1)
    assert [item.notice.user_id for item in store.pending_notices(far, limit=10)] == ["U2"]


def test_due_work_concerns_the_holders_of_expired_claims_not_those_only_warned() -> None:
    _, store, names = make()  # its store and names, with a clock this test moves
    clock = FakeClock()
    gateway = ServiceGateway(
        ClaimService(store, clock, ClaimPolicy(), "box"),
        lambda: SAMPLE,
        names,
        events=SlackEvents(store, clock),
        usage=usage_reports(store, clock),
    )

    async def main() -> frozenset[str]:
        await gateway.claim("U1", GpuSelection(labels=("0",)), "short", timedelta(hours=1))
        await gateway.claim("U2", GpuSelection(labels=("1",)), "long", timedelta(hours=2))
        clock.advance(timedelta(minutes=110))  # U1's ended, U2's ends within the warning time
        due = await gateway.process_due()
        assert [claim.user_id for claim in due.outcome.warned] == ["U2"]
        return due.concerned

    assert asyncio.run(main()) == {"U1"}
    assert names.learned[-1] == {"U1"}
