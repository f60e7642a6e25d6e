"""The DM sender: delivery through the outbox, surviving database errors, never losing or doubling a DM."""

import asyncio
import logging
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from gpubot.core.errors import StoreBusy
from gpubot.core.models import GpuSample, HostSample
from gpubot.core.outbox import Outbox
from gpubot.core.policy import ClaimPolicy
from gpubot.core.selection import GpuSelection
from gpubot.core.service import ClaimService
from gpubot.core.streak import FailureStreak
from gpubot.slack.notice_sender import NoticeSender
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
        "DM sender", logging.getLogger("gpubot.slack.notice_sender"), first_backoff_s=0.01, longest_backoff_s=0.02
    )


def released_by_admin(store, clock, gpus=(0,)):
    """A service on `store` whose admin force-released U1's claims: one FORCE_RELEASED notice per GPU."""
    service = ClaimService(store, clock, ClaimPolicy(admins=frozenset({"UADMIN"})), "box")
    service.sync_inventory(SAMPLE)
    service.claim("U1", GpuSelection(tuple(str(g) for g in gpus)), "train", None)
    service.release("UADMIN", GpuSelection(tuple(str(g) for g in gpus)))
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

    with caplog.at_level(logging.INFO, logger="gpubot.slack.notice_sender"):
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


def slack_error(method: str, error: str, status: int = 200, retry_after: int | None = None) -> SlackApiError:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    response = AsyncSlackResponse(
        client=None,
        http_verb="POST",
        api_url=f"https://slack.com/api/{method}",
        req_args={},
        data={"ok": False, "error": error},
        headers=headers,
        status_code=status,
    )
    return SlackApiError(error, response)


class FakeSlack:
    """DirectMessages over a fake Slack that keeps every DM (with its metadata) and can fail, hang or be slow."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.posted: list[tuple[str, str, dict]] = []
        self.delay_s = delay_s
        self.refuse: dict[str, SlackApiError] = {}  # by user
        self.hang_for: set[str] = set()  # users whose posts hang (never answered)
        self.lose_answer_for: set[str] = set()  # users whose post is accepted, then the answer is lost
        self.history_reads = 0

    async def send(self, user_id, message, metadata=None):
        if user_id in self.refuse:
            raise self.refuse[user_id]
        if user_id in self.hang_for:
            await asyncio.sleep(3600)
        await asyncio.sleep(self.delay_s)
        self.posted.append((user_id, message.text, (metadata or {}).get("event_payload", {})))
        if user_id in self.lose_answer_for:
            self.lose_answer_for.discard(user_id)
            raise asyncio.TimeoutError()

    async def find_posted(self, user_id, event_type, payload):
        self.history_reads += 1
        return any(u == user_id and all(p.get(k) == v for k, v in payload.items()) for u, _, p in self.posted)


def sender_for(store, clock, slack, **kwargs) -> NoticeSender:
    return NoticeSender(
        Outbox(store, clock), slack, clock, UTC, asyncio.Event(), failure_streak=fast_streak(), **kwargs
    )


def test_a_warning_for_a_claim_that_ended_is_dropped_not_sent():
    clock, store = FakeClock(), InMemoryClaimStore()
    service = ClaimService(store, clock, ClaimPolicy(admins=frozenset({"UADMIN"})), "box")
    service.sync_inventory(SAMPLE)
    service.claim("U1", GpuSelection(("0",)), "train", timedelta(hours=1))
    clock.advance(timedelta(minutes=50))
    service.process_due()  # queues the warning
    service.release("U1", GpuSelection(("0",)))
    slack = FakeSlack()
    assert asyncio.run(sender_for(store, clock, slack).deliver_due()) == 0
    assert slack.posted == []
    (warning,) = [store.notice_record(i) for i in (1,)]
    assert warning.abandoned_at is not None and "claim ended" in (warning.last_error or "")


def test_a_warning_for_a_claim_extended_since_is_dropped():
    clock, store = FakeClock(), InMemoryClaimStore()
    service = ClaimService(store, clock, ClaimPolicy(), "box")
    service.sync_inventory(SAMPLE)
    service.claim("U1", GpuSelection(("0",)), "train", timedelta(hours=1))
    clock.advance(timedelta(minutes=50))
    service.process_due()
    service.extend("U1", GpuSelection(("0",)), timedelta(hours=2))
    slack = FakeSlack()
    asyncio.run(sender_for(store, clock, slack).deliver_due())
    assert slack.posted == []
    assert "extended" in (store.notice_record(1).last_error or "")


def test_a_permanent_refusal_gives_the_dm_up_instead_of_retrying_it():
    clock, store = FakeClock(), InMemoryClaimStore()
    released_by_admin(store, clock)
    slack = FakeSlack()
    slack.refuse["U1"] = slack_error("conversations.open", "user_not_found")
    sender = sender_for(store, clock, slack)
    asyncio.run(sender.deliver_due())
    clock.advance(timedelta(hours=1))
    assert store.pending_notices(clock.now()) == []
    assert store.notice_record(1).last_error == "conversations.open: user_not_found"


def test_a_token_error_is_retried_not_given_up():
    clock, store = FakeClock(), InMemoryClaimStore()
    released_by_admin(store, clock)
    slack = FakeSlack()
    slack.refuse["U1"] = slack_error("chat.postMessage", "account_inactive")
    asyncio.run(sender_for(store, clock, slack).deliver_due())
    clock.advance(timedelta(minutes=5))
    (item,) = store.pending_notices(clock.now())
    assert item.attempts == 1 and item.unsettled_since is None


def test_a_rate_limit_holds_back_every_post_until_retry_after_without_counting_attempts():
    clock, store = FakeClock(), InMemoryClaimStore()
    released_by_admin(store, clock, gpus=(0, 1, 2))
    slack = FakeSlack()
    slack.refuse["U1"] = slack_error("chat.postMessage", "ratelimited", status=429, retry_after=30)
    sender = sender_for(store, clock, slack, concurrency=1)
    asyncio.run(sender.deliver_due())
    del slack.refuse["U1"]
    clock.advance(timedelta(seconds=29))
    assert asyncio.run(sender.deliver_due()) == 0  # chat.postMessage still held back
    assert slack.posted == []
    clock.advance(timedelta(seconds=1))
    assert asyncio.run(sender.deliver_due()) == 3
    assert all(store.notice_record(i).attempts == 0 for i in (1, 2, 3))


def test_one_hanging_dm_holds_up_no_other():
    clock, store = FakeClock(), InMemoryClaimStore()
    service = released_by_admin(store, clock)
    service.claim("U2", GpuSelection(("1",)), "eval", None)
    service.release("UADMIN", GpuSelection(("1",)))
    slack = FakeSlack()
    slack.hang_for.add("U1")
    sender = sender_for(store, clock, slack, delivery_bound_s=0.2)
    assert asyncio.run(asyncio.wait_for(sender.deliver_due(), 2)) == 1
    assert [user for user, _, _ in slack.posted] == ["U2"]
    hung = store.notice_record(1)
    assert hung.sent_at is None and hung.unsettled_since is not None  # it may have reached Slack


def test_a_dm_whose_answer_was_lost_is_found_in_the_dm_and_not_posted_again():
    clock, store = FakeClock(), InMemoryClaimStore()
    released_by_admin(store, clock)
    slack = FakeSlack()
    slack.lose_answer_for.add("U1")
    sender = sender_for(store, clock, slack)
    assert asyncio.run(sender.deliver_due()) == 0
    clock.advance(timedelta(seconds=29))
    assert asyncio.run(sender.deliver_due()) == 0  # an unknown outcome waits a while for Slack to settle
    clock.advance(timedelta(seconds=1))
    assert asyncio.run(sender.deliver_due()) == 1
    assert len(slack.posted) == 1 and slack.history_reads == 1
    assert store.notice_record(1).sent_at is not None


def test_a_dm_accepted_by_slack_but_not_recorded_is_recorded_not_sent_again():
    clock, inner = FakeClock(), InMemoryClaimStore()
    released_by_admin(inner, clock)
    store = FlakyStore(inner)
    store.fail("mark_notice_sent", 2)
    slack = FakeSlack()
    sender = sender_for(store, clock, slack)
    for _ in range(2):
        with pytest.raises(StoreBusy):
            asyncio.run(sender.deliver_due())
        clock.advance(timedelta(minutes=5))  # well past the lease
    assert asyncio.run(sender.deliver_due()) == 0
    assert len(slack.posted) == 1
    assert inner.notice_record(1).sent_at is not None


def test_a_dying_senders_dm_goes_out_within_the_lease_and_is_looked_for_first():
    clock, store = FakeClock(), InMemoryClaimStore()
    released_by_admin(store, clock)
    Outbox(store, clock).take_due()  # a sender that took it and died
    slack = FakeSlack()
    sender = sender_for(store, clock, slack)
    clock.advance(timedelta(seconds=19))
    assert asyncio.run(sender.deliver_due()) == 0
    clock.advance(timedelta(seconds=1))
    assert asyncio.run(sender.deliver_due()) == 1
    assert slack.history_reads == 1 and len(slack.posted) == 1
