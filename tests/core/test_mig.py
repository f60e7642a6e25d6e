"""MIG slices as GPUs people claim, and GPUs that are unreadable or whose processes are unknown."""

from dataclasses import replace
from datetime import timedelta

import pytest

from gpubot.core.errors import (
    AlreadyHeld,
    AlreadyYours,
    GpuUnreadable,
    NoFreeGpu,
    NotClaimed,
    SelectionOverlaps,
    UnknownGpu,
)
from gpubot.core.figures import free_state
from gpubot.core.load import Availability, LoadThresholds, gpu_use
from gpubot.core.models import GpuSample, HostSample, ProcessSample
from gpubot.core.policy import ClaimPolicy
from gpubot.core.selection import GpuSelection, parse_gpu_selection
from gpubot.core.service import ClaimService
from tests.fakes import FakeClock, InMemoryClaimStore

HOUR = timedelta(hours=1)
ANY = GpuSelection(any_free=True)


def slice_of(card: int, mig_index: int, profile: str = "1g.10gb", **fields) -> GpuSample:
    return GpuSample(
        card,
        f"MIG-{card}-{mig_index}",
        name="A100",
        memory_total_mib=9984,
        mig_index=mig_index,
        parent_uuid=f"GPU-{card}",
        mig_profile=profile,
        **fields,
    )


def host(*, card0=None, card1=None, slices=None) -> HostSample:
    """Card 0 a plain card, card 1 in MIG mode with slices 1.1 and 1.2, all idle unless told otherwise."""
    cards = [
        GpuSample(0, "GPU-0", name="H100", **{"utilization_gpu_pct": 0, **(card0 or {})}),
        GpuSample(1, "GPU-1", name="A100", mig_enabled=True, **(card1 or {})),
    ]
    slices = slices if slices is not None else {}
    return HostSample(
        "box",
        "550",
        (cards[0], cards[1], slice_of(1, 1, "3g.40gb", **slices.get(1, {})), slice_of(1, 2, **slices.get(2, {}))),
    )


@pytest.fixture
def service():
    service = ClaimService(InMemoryClaimStore(), FakeClock(), ClaimPolicy(), host="box")
    service.sync_inventory(host())
    return service


def labels(selection_text: str) -> GpuSelection:
    return parse_gpu_selection(selection_text, allow_any=False)


def test_a_slice_is_claimed_by_its_address_and_hands_back_its_mig_uuid(service):
    outcome = service.claim("U1", labels("1.2"), "train", None, host())
    [claim] = outcome.claims
    assert (claim.label, claim.gpu_uuid, claim.parent_gpu_uuid) == ("1.2", "MIG-1-2", "GPU-1")
    assert outcome.cuda_devices.value == "MIG-1-2" and outcome.cuda_devices.by_uuid


def test_plain_cards_keep_their_indices_for_cuda(service):
    devices = service.claim("U1", labels("0"), "train", None, host()).cuda_devices
    assert (devices.value, devices.by_uuid, devices.whole_mig_cards) == ("0", False, ())


def test_a_whole_mig_card_hands_back_all_its_slices(service):
    devices = service.claim("U1", labels("1"), "train", None, host()).cuda_devices
    assert (devices.value, devices.whole_mig_cards) == ("MIG-1-1,MIG-1-2", ("1",))


def test_mixing_a_card_and_a_slice_names_both_by_uuid(service):
    devices = service.claim("U1", labels("0,1.1"), "train", None, host()).cuda_devices
    assert devices.value == "GPU-0,MIG-1-1"


def test_a_held_slice_refuses_its_card_and_a_held_card_its_slices(service):
    service.claim("U1", labels("1.1"), "train", None, host())
    with pytest.raises(AlreadyHeld) as refused:
        service.claim("U2", labels("1"), "eval", None, host())
    assert (refused.value.gpu_label, refused.value.held_label, refused.value.holder_id) == ("1", "1.1", "U1")
    # The other slice of the card is still free.
    assert service.claim("U2", labels("1.2"), "eval", None, host()).claims[0].label == "1.2"
    service.release("U1", None)
    service.release("U2", None)
    service.claim("U3", labels("1"), "all of it", None, host())
    with pytest.raises(AlreadyHeld, match=r"GPU 1\.2 is taken: GPU 1 is claimed by U3"):
        service.claim("U1", labels("1.2"), "train", None, host())


def test_claiming_a_slice_of_your_own_card_is_refused_as_held_not_as_yours(service):
    service.claim("U1", labels("1"), "train", None, host())
    with pytest.raises(AlreadyHeld):
        service.claim("U1", labels("1.1"), "train", None, host())
    with pytest.raises(AlreadyYours):
        service.claim("U1", labels("1"), "train", None, host())


def test_a_card_and_its_slice_in_one_request_is_refused(service):
    with pytest.raises(SelectionOverlaps, match=r"GPU 1 takes all its MIG slices, 1\.2 too"):
        service.claim("U1", labels("1,1.2"), "train", None, host())


def test_an_unknown_slice_lists_what_there_is(service):
    with pytest.raises(UnknownGpu) as refused:
        service.claim("U1", labels("1.7"), "train", None, host())
    assert refused.value.known == ("0", "1", "1.1", "1.2")


def test_release_and_extend_name_slices(service):
    service.claim("U1", labels("1.1"), "train", None, host())
    extended = service.extend("U1", labels("1.1"), HOUR)
    assert [c.label for c in extended.claims] == ["1.1"]
    with pytest.raises(NotClaimed, match=r"GPU 1\.2 is not claimed"):
        service.release("U1", labels("1.2"))
    assert [c.label for c in service.release("U1", labels("1.1")).released] == ["1.1"]


def test_any_prefers_an_idle_plain_card_then_an_idle_slice_never_a_whole_mig_card(service):
    assert service.claim("U1", ANY, "a", None, host()).claims[0].label == "0"
    second = service.claim("U2", ANY, "b", None, host())
    assert second.claims[0].label == "1.1" and second.cuda_devices.value == "MIG-1-1"
    assert service.claim("U3", ANY, "c", None, host()).claims[0].label == "1.2"
    with pytest.raises(NoFreeGpu):
        service.claim("U4", ANY, "d", None, host())


def test_any_takes_an_idle_slice_before_a_card_whose_processes_are_unknown(service):
    sample = host(card0={"processes_unknown": "no permission"})
    assert service.claim("U1", ANY, "a", None, sample).claims[0].label == "1.1"


def test_a_slice_with_processes_is_in_use_and_any_takes_the_idle_one(service):
    job = ProcessSample(4242, "python", 4000, "alice")
    sample = host(card0={"utilization_gpu_pct": 99}, slices={1: {"processes": (job,)}})
    assert service.claim("U1", ANY, "a", None, sample).claims[0].label == "1.2"


def test_an_unreadable_gpu_is_refused_with_its_reason(service):
    sample = host(slices={2: {"unreadable": "no permission"}})
    with pytest.raises(GpuUnreadable, match=r"GPU 1\.2 cannot be read \(no permission\)") as refused:
        service.claim("U1", labels("1.2"), "train", None, sample)
    assert (refused.value.gpu_label, refused.value.reason) == ("1.2", "no permission")


def test_any_never_takes_an_unreadable_gpu(service):
    sample = host(card0={"unreadable": "no permission"}, slices={1: {"unreadable": "x"}, 2: {"unreadable": "y"}})
    with pytest.raises(NoFreeGpu) as refused:
        service.claim("U1", ANY, "train", None, sample)
    assert (refused.value.not_responding, refused.value.unreadable) == ((), ("0", "1.1", "1.2"))


def test_unknown_processes_are_never_idle_and_the_claim_says_so(service):
    unknown = GpuSample(0, "GPU-0", utilization_gpu_pct=0, processes_unknown="no permission")
    use = gpu_use(unknown, LoadThresholds())
    assert use.availability is Availability.UNKNOWN and not use.in_use
    assert free_state(use, str) == "free, processes n/a (no permission)"
    outcome = service.claim("U1", labels("0"), "train", None, host(card0={"processes_unknown": "no permission"}))
    assert outcome.warnings == ("GPU 0's processes cannot be listed (no permission): it may not be idle.",)


def test_unreadable_is_shown_with_its_reason_and_lost_stays_not_responding():
    unreadable = gpu_use(GpuSample(0, "GPU-0", unreadable="no permission"), LoadThresholds())
    lost = gpu_use(GpuSample(0, "GPU-0", lost=True), LoadThresholds())
    assert free_state(unreadable, str) == "unreadable (no permission)" and unreadable.unclaimable
    assert free_state(lost, str) == "not responding" and lost.unclaimable


def test_a_slice_without_processes_is_idle_though_mig_reports_no_utilization():
    assert gpu_use(slice_of(1, 1, processes=()), LoadThresholds()).availability is Availability.IDLE


def test_the_dashboard_marks_gpus_held_through_their_card_or_slices(service):
    service.claim("U1", labels("1.2"), "train", None, host())
    rows = {row.gpu.label: row for row in service.dashboard(host()).rows}
    assert rows["1.2"].claim is not None and not rows["1.2"].free
    assert rows["1"].claim is None and rows["1"].covered_by == rows["1.2"].claim
    assert rows["1.1"].free and rows["0"].free
    assert service.dashboard(host()).free_count == 2


def test_a_repartitioned_card_keeps_its_slice_claims_as_a_vanished_gpu_keeps_its_claim():
    store = InMemoryClaimStore()
    service = ClaimService(store, FakeClock(), ClaimPolicy(), host="box")
    service.sync_inventory(host())
    service.claim("U1", labels("1.2"), "train", None, host())
    repartitioned = replace(host(), gpus=host().gpus[:3])  # slice 1.2 vanished
    service.sync_inventory(repartitioned)
    assert [row.gpu.label for row in service.dashboard(repartitioned).rows] == ["0", "1", "1.1"]
    # The claim is kept (the host CLI's `gpubot claims` lists it), and its holder can still release it.
    assert [claim.label for claim in store.active_claims("box")] == ["1.2"]
    assert service.release("U1", None).released[0].label == "1.2"
    # A slice that appears is listed and claimable.
    service.sync_inventory(host())
    assert service.claim("U2", labels("1.2"), "eval", None, host()).claims[0].label == "1.2"
