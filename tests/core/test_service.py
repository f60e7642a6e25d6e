"""The claim rules, with an injected clock and the in-memory store: no sleeping, no patched datetime."""

from datetime import timedelta

import pytest

from gpubot.core.errors import (
    AlreadyHeld,
    AlreadyYours,
    ClaimRefused,
    GpuNotResponding,
    InvalidPurpose,
    NoFreeGpu,
    NotClaimed,
    NotHolder,
    UnknownGpu,
)
from gpubot.core.load import Availability, LoadThresholds
from gpubot.core.models import ClaimStatus, EventKind, GpuSample, HostSample, NoticeKind, ProcessSample
from gpubot.core.policy import ClaimPolicy, check_purpose
from gpubot.core.selection import GpuSelection
from gpubot.core.service import ClaimService
from tests.audit import audit_log
from tests.fakes import FakeClock, InMemoryClaimStore

HOUR = timedelta(hours=1)


def gpus(*indices):
    return GpuSelection(labels=tuple(str(index) for index in indices))


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store():
    return InMemoryClaimStore()


@pytest.fixture
def service(store, clock):
    service = ClaimService(store, clock, ClaimPolicy(admins=frozenset({"UADMIN"})), host="box")
    service.sync_inventory(HostSample("box", "550", tuple(GpuSample(i, f"GPU-{i}", name="H100") for i in range(4))))
    return service


def test_claim_uses_default_duration_and_writes_an_event(service, store, clock):
    outcome = service.claim("U1", gpus(0), "train", None)
    (claim,) = outcome.claims
    assert (claim.gpu_index, claim.user_id, claim.purpose) == (0, "U1", "train")
    assert claim.ends_at == clock.now() + 2 * HOUR
    assert [e.kind for e in audit_log(store, claim.id)] == [EventKind.CLAIMED]


def test_claim_several_is_all_or_nothing(service, store):
    service.claim("U2", gpus(2), "eval", None)
    with pytest.raises(AlreadyHeld) as raised:
        service.claim("U1", gpus(0, 1, 2), "train", None)
    assert raised.value.holder_id == "U2" and raised.value.gpu_label == "2"
    assert [c.gpu_index for c in store.active_claims("box")] == [2]


def test_claim_any_takes_the_first_free(service):
    service.claim("U2", gpus(0), "eval", None)
    assert service.claim("U1", GpuSelection(any_free=True), "train", HOUR).claims[0].gpu_index == 1


def test_claim_any_when_all_taken(service):
    service.claim("U2", gpus(0, 1, 2, 3), "eval", None)
    with pytest.raises(NoFreeGpu):
        service.claim("U1", GpuSelection(any_free=True), "train", None)


@pytest.mark.parametrize(("duration", "fragment"), [(timedelta(minutes=29), "minimum"), (13 * HOUR, "maximum")])
def test_duration_bounds(service, store, duration, fragment):
    with pytest.raises(ClaimRefused, match=fragment):
        service.claim("U1", gpus(0), "train", duration)
    assert store.active_claims("box") == []


def test_unknown_gpu_lists_the_known_ones(service):
    with pytest.raises(UnknownGpu, match="GPUs: 0, 1, 2, 3"):
        service.claim("U1", gpus(9), "train", None)


def test_an_empty_or_invisible_purpose_is_refused_before_it_reaches_the_service():
    for purpose in ("   ", "\u200b\u200c"):
        with pytest.raises(InvalidPurpose):
            check_purpose(purpose)
    assert check_purpose("  fine-tune\n llama ") == "fine-tune llama"


def test_claiming_your_own_gpu_again_points_to_extend(service):
    service.claim("U1", gpus(0), "train", None)
    with pytest.raises(AlreadyYours, match="extend") as raised:
        service.claim("U1", gpus(0), "again", None)
    assert raised.value.gpu_label == "0"


def test_refusals_carry_their_data_in_plain_words_without_slack_syntax(service):
    service.claim("U1", gpus(0), "train", None)
    with pytest.raises(AlreadyHeld) as held:
        service.claim("U2", gpus(0), "eval", None)
    with pytest.raises(NotHolder) as not_holder:
        service.release("U2", gpus(0))
    for error in (held.value, not_holder.value, NoFreeGpu(), NoFreeGpu(["3"]), GpuNotResponding("3")):
        assert "<@" not in error.message and "/gpu" not in error.message
    assert (held.value.gpu_label, held.value.holder_id, held.value.people) == ("0", "U1", ("U1",))
    assert not_holder.value.people == ("U1",)


def test_an_expired_claim_frees_the_gpu_even_before_the_scheduler_runs(service, store, clock):
    first = service.claim("U1", gpus(0), "train", HOUR).claims[0]
    clock.advance(HOUR)
    assert service.dashboard(None).rows[0].claim is None
    service.claim("U2", gpus(0), "next", None)
    assert store.get_claim(first.id).status is ClaimStatus.EXPIRED
    assert [item.notice.kind for item in store.pending_notices(clock.now())] == [NoticeKind.EXPIRED]


def test_release_own_and_all(service, store):
    service.claim("U1", gpus(0, 1), "train", None)
    assert [c.gpu_index for c in service.release("U1", gpus(0)).released] == [0]
    assert [c.gpu_index for c in service.release("U1", None).released] == [1]
    assert store.active_claims("box") == []
    with pytest.raises(ClaimRefused, match="hold no GPUs"):
        service.release("U1", None)


def test_release_someone_elses_is_refused_naming_the_holder(service, store):
    service.claim("U2", gpus(0), "eval", None)
    with pytest.raises(NotHolder) as raised:
        service.release("U1", gpus(0))
    assert raised.value.holder_id == "U2"
    assert len(store.active_claims("box")) == 1


def test_release_a_free_gpu(service):
    with pytest.raises(NotClaimed):
        service.release("U1", gpus(1))


def test_admin_force_release_queues_a_dm_to_the_holder(service, store, clock):
    claim = service.claim("U2", gpus(0), "eval", None).claims[0]
    outcome = service.release("UADMIN", gpus(0))
    assert outcome.released == () and [c.id for c in outcome.forced] == [claim.id]
    assert audit_log(store, claim.id)[-1].kind is EventKind.FORCE_RELEASED
    (item,) = store.pending_notices(clock.now())
    assert (item.notice.kind, item.notice.user_id, item.notice.actor_id) == (NoticeKind.FORCE_RELEASED, "U2", "UADMIN")


def test_extend_pushes_the_end_and_caps_at_max_from_now(service, clock):
    claim = service.claim("U1", gpus(0), "train", 2 * HOUR).claims[0]
    extended = service.extend("U1", gpus(0), HOUR)
    assert extended.claims[0].ends_at == claim.ends_at + HOUR and not extended.capped
    capped = service.extend("U1", gpus(0), 20 * HOUR)
    assert capped.capped and capped.claims[0].ends_at == clock.now() + 12 * HOUR
    with pytest.raises(ClaimRefused, match="maximum"):
        service.extend("U1", gpus(0), HOUR)


def test_extend_someone_elses_or_a_free_gpu(service):
    service.claim("U2", gpus(0), "eval", None)
    with pytest.raises(NotHolder):
        service.extend("U1", gpus(0), HOUR)
    with pytest.raises(NotClaimed):
        service.extend("U1", gpus(1), HOUR)


def test_dashboard_joins_claims_and_samples(service):
    service.claim("U1", gpus(1), "train", None)
    sample = HostSample("box", "550", (GpuSample(1, "GPU-1", utilization_gpu_pct=50),))
    rows = service.dashboard(sample).rows
    assert [r.gpu.index for r in rows] == [0, 1, 2, 3]
    assert rows[1].claim.user_id == "U1" and rows[1].sample.utilization_gpu_pct == 50
    assert rows[0].claim is None and rows[0].sample is None
    assert service.dashboard(sample).free_count == 3


def test_the_host_cli_releases_as_admin_without_being_listed(service, store, clock):
    service.claim("U2", gpus(0), "eval", None)
    outcome = service.release("host:root", gpus(0), as_admin=True)
    assert [c.gpu_index for c in outcome.forced] == [0]
    (item,) = store.pending_notices(clock.now())
    assert item.notice.actor_id == "host:root"


# --- a GPU that is busy is not "free" (issue 11, point 14) ---------------------------------------------

ALICE_JOB = ProcessSample(1234, "python", 30_000, "alice")


def telemetry(**gpus):
    """A sample of the four GPUs: idle unless named, e.g. g2=dict(utilization_gpu_pct=95)."""
    return HostSample(
        "box",
        "550",
        tuple(
            GpuSample(i, f"GPU-{i}", name="H100", **{"utilization_gpu_pct": 0, **gpus.get(f"g{i}", {})})
            for i in range(4)
        ),
    )


def test_claiming_a_gpu_in_use_succeeds_with_a_warning_naming_the_process(service):
    sample = telemetry(g2={"utilization_gpu_pct": 95, "processes": (ALICE_JOB,)})
    outcome = service.claim("U1", gpus(2), "train", None, sample)
    assert [c.gpu_index for c in outcome.claims] == [2]
    (warning,) = outcome.warnings
    assert "GPU 2 is in use by alice's process python (pid 1234)" in warning


def test_claiming_an_idle_gpu_gives_no_warning(service):
    assert service.claim("U1", gpus(1), "train", None, telemetry()).warnings == ()


def test_a_process_alone_makes_a_gpu_in_use_and_utilization_alone_too(service):
    sample = telemetry(g0={"processes": (ProcessSample(7, None, None, None),)}, g1={"utilization_gpu_pct": 10})
    outcome = service.claim("U1", gpus(0, 1), "train", None, sample)
    assert len(outcome.warnings) == 2
    assert "an unknown user's process (pid 7)" in outcome.warnings[0]
    assert "a process gpubot cannot see (10 % utilization)" in outcome.warnings[1]


def test_utilization_below_the_active_threshold_is_idle(store, clock):
    service = ClaimService(store, clock, ClaimPolicy(load=LoadThresholds(active_pct=50)), host="box")
    service.sync_inventory(telemetry())
    assert service.claim("U1", gpus(0), "train", None, telemetry(g0={"utilization_gpu_pct": 49})).warnings == ()


def test_claiming_a_gpu_that_is_not_responding_is_refused(service, store):
    with pytest.raises(GpuNotResponding, match="GPU 3 is not responding") as raised:
        service.claim("U1", gpus(0, 3), "train", None, telemetry(g3={"lost": True}))
    assert raised.value.gpu_label == "3"
    assert store.active_claims("box") == []


def test_claim_any_prefers_an_idle_gpu_over_a_busy_one(service):
    sample = telemetry(g0={"utilization_gpu_pct": 99}, g1={"processes": (ALICE_JOB,)}, g2={"lost": True})
    outcome = service.claim("U1", GpuSelection(any_free=True), "train", None, sample)
    assert [c.gpu_index for c in outcome.claims] == [3] and outcome.warnings == ()


def test_claim_any_takes_a_busy_gpu_with_a_warning_when_no_idle_one_is_left(service):
    service.claim("U2", gpus(3), "eval", None)
    sample = telemetry(g0={"lost": True}, g1={"utilization_gpu_pct": 99}, g2={"processes": (ALICE_JOB,)})
    outcome = service.claim("U1", GpuSelection(any_free=True), "train", None, sample)
    assert [c.gpu_index for c in outcome.claims] == [1]
    assert "GPU 1 is in use" in outcome.warnings[0]


def test_claim_any_never_takes_a_gpu_that_is_not_responding(service, store):
    service.claim("U2", gpus(0, 1), "eval", None)
    with pytest.raises(NoFreeGpu, match="only unclaimed GPUs 2, 3 are not responding") as raised:
        service.claim("U1", GpuSelection(any_free=True), "train", None, telemetry(g2={"lost": True}, g3={"lost": True}))
    assert raised.value.not_responding == ("2", "3")
    assert [c.gpu_index for c in store.active_claims("box")] == [0, 1]


def test_without_telemetry_every_gpu_is_unknown_and_claimable(service):
    outcome = service.claim("U1", GpuSelection(any_free=True), "train", None, None)
    assert [c.gpu_index for c in outcome.claims] == [0] and outcome.warnings == ()


def test_the_dashboard_says_which_free_gpus_are_in_use_or_not_responding(service):
    service.claim("U2", gpus(0), "eval", None)
    sample = telemetry(g0={"utilization_gpu_pct": 99}, g1={"processes": (ALICE_JOB,)}, g2={"lost": True})
    dashboard = service.dashboard(sample)
    assert [row.use.availability for row in dashboard.rows] == [
        Availability.IN_USE,
        Availability.IN_USE,
        Availability.NOT_RESPONDING,
        Availability.IDLE,
    ]
    assert (dashboard.free_count, dashboard.free_in_use_count, dashboard.free_not_responding_count) == (3, 1, 1)


def test_the_uses_of_one_sample_are_worked_out_once_and_a_new_sample_is_read_afresh(service, store):
    busy = GpuSample(1, "GPU-1", utilization_gpu_pct=95, processes=(ProcessSample(7, "python", 100, "alice"),))
    first = HostSample("box", "550", (GpuSample(0, "GPU-0", utilization_gpu_pct=0), busy))

    once, again = service.dashboard(first), service.dashboard(first)
    assert [a.use is b.use for a, b in zip(once.rows, again.rows, strict=True)] == [True] * 4
    assert [row.use.availability for row in once.rows][:2] == [Availability.IDLE, Availability.IN_USE]

    idle_now = HostSample(
        "box", "550", (GpuSample(0, "GPU-0", utilization_gpu_pct=0), GpuSample(1, "GPU-1", utilization_gpu_pct=0))
    )
    assert service.dashboard(idle_now).rows[1].use.availability is Availability.IDLE
