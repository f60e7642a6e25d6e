from datetime import timedelta

from gpubot.core.models import GpuSample, HostSample
from gpubot.core.outbox import Outbox, retry_delay, stale_reason
from gpubot.core.policy import ClaimPolicy
from gpubot.core.selection import GpuSelection
from gpubot.core.service import ClaimService
from tests.fakes import FakeClock, InMemoryClaimStore


def test_backoff_doubles_up_to_five_minutes_and_honours_retry_after():
    assert retry_delay(0, None) == timedelta(seconds=2)
    assert retry_delay(3, None) == timedelta(seconds=16)
    assert retry_delay(30, None) == timedelta(minutes=5)
    assert retry_delay(0, timedelta(seconds=30)) == timedelta(seconds=30)
    assert retry_delay(10, timedelta(seconds=1)) == timedelta(minutes=5)


def test_a_failed_dm_comes_back_after_its_delay_and_is_sent_once():
    clock, store = FakeClock(), InMemoryClaimStore()
    service = ClaimService(store, clock, ClaimPolicy(admins=frozenset({"UADMIN"})), "box")
    service.sync_inventory(HostSample("box", None, (GpuSample(0, "GPU-0"),)))
    service.claim("U1", GpuSelection(("0",)), "train", None)
    service.release("UADMIN", GpuSelection(("0",)))
    outbox = Outbox(store, clock)

    (item,) = outbox.take_due()
    assert outbox.take_due() == []  # leased to this sender
    outbox.failed(item, "ratelimited", retry_after=timedelta(seconds=30))
    clock.advance(timedelta(seconds=29))
    assert outbox.take_due() == []
    clock.advance(timedelta(seconds=1))
    (again,) = outbox.take_due()
    assert again.attempts == 1
    outbox.delivered(again)
    clock.advance(timedelta(hours=1))
    assert outbox.take_due() == []


def test_a_claim_confirmation_is_sent_while_the_claim_lasts_and_dropped_once_it_ended():
    clock, store = FakeClock(), InMemoryClaimStore()
    service = ClaimService(store, clock, ClaimPolicy(), "box")
    service.sync_inventory(HostSample("box", None, (GpuSample(0, "GPU-0"), GpuSample(1, "GPU-1"))))
    service.claim("U1", GpuSelection(("0", "1")), "train", None, confirm_by_dm=True)
    service.release("U1", GpuSelection(("1",)))

    by_gpu = {item.claim.gpu_index: item for item in store.pending_notices(clock.now())}
    assert stale_reason(by_gpu[0], clock.now()) is None
    assert stale_reason(by_gpu[1], clock.now()) == "the claim ended before its confirmation went out"


def test_a_claim_without_confirmation_owes_no_dm():
    clock, store = FakeClock(), InMemoryClaimStore()
    service = ClaimService(store, clock, ClaimPolicy(), "box")
    service.sync_inventory(HostSample("box", None, (GpuSample(0, "GPU-0"),)))
    service.claim("U1", GpuSelection(any_free=True), "train", None)
    assert store.pending_notices(clock.now()) == []
    service.release("U1", None)
    service.claim("U1", GpuSelection(any_free=True), "train", None, confirm_by_dm=True)
    assert len(store.pending_notices(clock.now())) == 1
