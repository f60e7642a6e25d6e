"""Expiry warnings and automatic release, driven by a FakeClock: no sleeping, no patched datetime."""

from datetime import timedelta

import pytest

from gpubot.core.errors import ClaimChanged, ClaimNotActive, NotHolder
from gpubot.core.models import ClaimStatus, EventKind, GpuSample, HostSample, NoticeKind
from gpubot.core.policy import ClaimPolicy
from gpubot.core.selection import GpuSelection
from gpubot.core.service import ClaimService
from tests.audit import audit_log
from tests.fakes import FakeClock, InMemoryClaimStore

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store():
    return InMemoryClaimStore()


@pytest.fixture
def service(store, clock):
    service = ClaimService(store, clock, ClaimPolicy(warn_before=15 * MINUTE), host="box")
    service.sync_inventory(HostSample("box", None, tuple(GpuSample(i, f"GPU-{i}") for i in range(2))))
    return service


def notices(store, clock):
    return [(item.notice.kind, item.notice.user_id) for item in store.pending_notices(clock.now() + 365 * HOUR * 24)]


def test_a_claim_is_warned_once_inside_the_lead_time_then_expired(service, store, clock):
    claim = service.claim("U1", GpuSelection(("0",)), "train", HOUR).claims[0]
    assert service.process_due().warned == ()
    clock.advance(44 * MINUTE)
    assert service.process_due().warned == ()
    clock.advance(MINUTE)
    assert [c.id for c in service.process_due().warned] == [claim.id]
    assert service.process_due().warned == ()  # once
    clock.advance(15 * MINUTE)
    report = service.process_due()
    assert [c.id for c in report.expired] == [claim.id] and report.warned == ()
    assert store.get_claim(claim.id).status is ClaimStatus.EXPIRED
    assert service.dashboard(None).free_count == 2
    assert notices(store, clock) == [(NoticeKind.EXPIRY_WARNING, "U1"), (NoticeKind.EXPIRED, "U1")]
    assert [e.kind for e in audit_log(store, claim.id)][-1] is EventKind.EXPIRED


def test_after_downtime_an_overdue_claim_is_expired_without_a_late_warning(service, store, clock):
    service.claim("U1", GpuSelection(("0",)), "train", HOUR)
    clock.advance(3 * HOUR)  # gpubot was down through both the warning and the end
    report = service.process_due()
    assert len(report.expired) == 1 and report.warned == ()
    assert notices(store, clock) == [(NoticeKind.EXPIRED, "U1")]


def test_a_claim_shorter_than_the_lead_time_is_warned_at_once(service, clock):
    service.claim("U1", GpuSelection(("0",)), "quick", 30 * MINUTE)
    clock.advance(16 * MINUTE)
    assert len(service.process_due().warned) == 1


def test_extending_after_a_warning_earns_a_new_warning_before_the_new_end(service, store, clock):
    claim = service.claim("U1", GpuSelection(("0",)), "train", HOUR).claims[0]
    clock.advance(50 * MINUTE)
    assert len(service.process_due().warned) == 1
    extended = service.extend_claim("U1", claim.id, HOUR, expected_ends_at=claim.ends_at)
    assert extended.claims[0].ends_at == claim.ends_at + HOUR
    assert service.process_due().warned == ()
    clock.advance(HOUR)
    assert len(service.process_due().warned) == 1


def test_the_same_extend_button_pressed_twice_extends_once(service, clock):
    claim = service.claim("U1", GpuSelection(("0",)), "train", HOUR).claims[0]
    service.extend_claim("U1", claim.id, HOUR, expected_ends_at=claim.ends_at)
    with pytest.raises(ClaimChanged):
        service.extend_claim("U1", claim.id, HOUR, expected_ends_at=claim.ends_at)
    assert service.home("U1", None).own_claims[0].ends_at == claim.ends_at + HOUR


def test_buttons_on_an_ended_claim_change_nothing(service, store, clock):
    claim = service.claim("U1", GpuSelection(("0",)), "train", HOUR).claims[0]
    service.release_claim("U1", claim.id)
    with pytest.raises(ClaimNotActive):
        service.release_claim("U1", claim.id)
    with pytest.raises(ClaimNotActive):
        service.extend_claim("U1", claim.id, HOUR, expected_ends_at=claim.ends_at)
    other = service.claim("U1", GpuSelection(("1",)), "train", HOUR).claims[0]
    clock.advance(2 * HOUR)
    with pytest.raises(ClaimNotActive):  # expired meanwhile: the press expires it, then refuses
        service.release_claim("U1", other.id)
    assert store.get_claim(other.id).status is ClaimStatus.EXPIRED


def test_release_by_id_is_for_the_holder(service):
    claim = service.claim("U1", GpuSelection(("0",)), "train", HOUR).claims[0]
    with pytest.raises(NotHolder):
        service.release_claim("U2", claim.id)


def test_home_lists_own_claims_and_every_gpu(service):
    service.claim("U1", GpuSelection(("1",)), "mine", HOUR)
    service.claim("U2", GpuSelection(("0",)), "theirs", HOUR)
    home = service.home("U1", None)
    assert [c.purpose for c in home.own_claims] == ["mine"]
    assert len(home.dashboard.rows) == 2


def test_offered_durations_stay_within_bounds_and_include_the_default():
    policy = ClaimPolicy(min_duration=HOUR, max_duration=5 * HOUR, default_duration=3 * HOUR)
    assert policy.offered_durations() == (HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR)
