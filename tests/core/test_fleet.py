"""The claim rules across a fleet: `HOST:SEL`, bare GPUs refused with several hosts, offline hosts, `2xany`."""

from datetime import timedelta

import pytest

from gpubot.core.commands import RealtimeCommand, StatusCommand, parse_command
from gpubot.core.dashboard import FleetHome, HomeState
from gpubot.core.errors import (
    AlreadyHeld,
    ClaimRefused,
    CommandError,
    HostNeeded,
    HostOffline,
    NoHostWithFree,
    NotClaimed,
    UnknownGpu,
    UnknownHost,
)
from gpubot.core.models import ClaimStatus, GpuSample, HostReport, HostRole, HostSample, ProcessSample
from gpubot.core.policy import ClaimPolicy
from gpubot.core.selection import GpuSelection, parse_gpu_selection
from gpubot.core.service import ClaimService
from tests.fakes import FakeClock, InMemoryClaimStore

HOUR = timedelta(hours=1)
TIMEOUT = timedelta(seconds=30)


def host_sample(name: str, count: int, busy: tuple[int, ...] = (), **extra: GpuSample) -> HostSample:
    """`count` idle H100s on `name` (UUIDs `name-i`), those in `busy` at 90 % with a process."""
    gpus = [
        GpuSample(
            i,
            f"{name}-{i}",
            name="H100",
            utilization_gpu_pct=90 if i in busy else 0,
            processes=(ProcessSample(10 + i, "python", 100, "carol"),) if i in busy else (),
        )
        for i in range(count)
    ]
    return HostSample(name, "550", (*gpus, *extra.values()))


LOCAL = host_sample("box-1", 2, busy=(0,))
SECOND = host_sample("box-2", 4, busy=(0,))
THIRD = host_sample("box-3", 2)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> InMemoryClaimStore:
    return InMemoryClaimStore()


def reports(clock: FakeClock, *, third_seen_ago: timedelta = timedelta(seconds=5)) -> list[HostReport]:
    now = clock.now()
    return [
        HostReport("box-1", HostRole.SERVE, now, LOCAL),
        HostReport("box-2", HostRole.AGENT, now - timedelta(seconds=2), SECOND),
        HostReport("box-3", HostRole.AGENT, now - third_seen_ago, THIRD),
    ]


@pytest.fixture
def service(store: InMemoryClaimStore, clock: FakeClock) -> ClaimService:
    service = ClaimService(store, clock, ClaimPolicy(admins=frozenset({"UADMIN"})), host="box-1", host_timeout=TIMEOUT)
    service.sync_inventory(LOCAL)
    service.fleet_reported(reports(clock))
    return service


def sel(text: str) -> GpuSelection:
    return parse_gpu_selection(text, allow_any=True)


def claim(service: ClaimService, text: str, user: str = "U1"):
    return service.claim(user, sel(text), "train", HOUR, LOCAL)


def test_the_fleet_lists_every_reporting_host_with_its_gpus_from_their_reports(
    service: ClaimService, store: InMemoryClaimStore
) -> None:
    fleet = service.fleet(LOCAL)
    assert fleet.names == ("box-1", "box-2", "box-3") and fleet.several
    assert [len(host.rows) for host in fleet.hosts] == [2, 4, 2]
    # The other hosts' GPUs were recorded from their reports, so claims can name them.
    assert [gpu.uuid for gpu in store.list_gpus("box-2")] == ["box-2-0", "box-2-1", "box-2-2", "box-2-3"]
    second = fleet.host("box-2")
    assert second.rows[0].use.in_use and second.rows[0].sample is not None
    assert fleet.gpu_count == 8 and fleet.free_count == 8


def test_a_bare_gpu_is_refused_with_several_hosts_listing_them_and_an_example(service: ClaimService) -> None:
    for act in (
        lambda: claim(service, "0"),
        lambda: service.release("U1", sel("0")),
        lambda: service.extend("U1", sel("0,1"), HOUR),
    ):
        with pytest.raises(HostNeeded) as refused:
            act()
        assert "box-1, box-2, box-3" in refused.value.message and "`box-1:0" in refused.value.message
    assert not service.fleet(LOCAL).host("box-1").rows[0].claim


def test_host_sel_claims_on_that_host_and_the_reply_names_it(service: ClaimService, store: InMemoryClaimStore) -> None:
    outcome = claim(service, "box-2:1,3")
    assert [(c.host, c.label) for c in outcome.claims] == [("box-2", "1"), ("box-2", "3")]
    assert outcome.several_hosts and outcome.cuda_devices.value == "1,3"
    with pytest.raises(AlreadyHeld) as held:
        claim(service, "box-2:3", user="U2")
    assert held.value.gpu_label == "box-2:3"
    # The same index on another host is another GPU.
    assert claim(service, "box-1:1", user="U2").claims[0].host == "box-1"


def test_an_unknown_host_or_gpu_is_refused_with_what_there_is(service: ClaimService) -> None:
    with pytest.raises(UnknownHost) as unknown:
        claim(service, "box-9:0")
    assert "box-9" in unknown.value.message and "(hosts: box-1, box-2, box-3)" in unknown.value.message
    with pytest.raises(UnknownGpu) as no_gpu:
        claim(service, "box-3:5")
    assert "no GPU 5 on box-3 (GPUs: 0, 1)" in no_gpu.value.message


def test_an_offline_host_cannot_be_claimed_but_its_claims_stay_and_can_be_released(
    service: ClaimService, store: InMemoryClaimStore, clock: FakeClock
) -> None:
    held = claim(service, "box-3:0").claims[0]
    clock.advance(timedelta(minutes=2))
    # box-3 stopped reporting; the others go on.
    service.fleet_reported(reports(clock, third_seen_ago=timedelta(minutes=2)))
    third = service.fleet(LOCAL).host("box-3")
    assert not third.online and third.last_seen_at == held.started_at
    assert third.sample is None and third.rows[0].claim == held
    with pytest.raises(HostOffline) as offline:
        claim(service, "box-3:1", user="U2")
    assert "box-3 is offline (last report" in offline.value.message
    with pytest.raises(HostOffline):
        claim(service, "box-3:any", user="U2")
    # `any` looks at online hosts only.
    assert claim(service, "2xany", user="U2").claims[0].host != "box-3"
    assert store.get_claim(held.id).status is ClaimStatus.ACTIVE
    released = service.release("U1", sel("box-3:0"))
    assert [c.id for c in released.released] == [held.id] and released.several_hosts


def test_any_takes_an_idle_gpu_of_an_online_host_first(service: ClaimService) -> None:
    taken = [claim(service, "any", user=f"U{n}").claims[0] for n in range(5)]
    # box-1:0 and box-2:0 are busy: every idle GPU goes first, by host.
    assert [f"{c.host}:{c.label}" for c in taken] == ["box-1:1", "box-2:1", "box-2:2", "box-2:3", "box-3:0"]


def test_n_any_claims_all_on_one_host_with_enough_idle_gpus(service: ClaimService) -> None:
    outcome = claim(service, "3xany")
    assert {c.host for c in outcome.claims} == {"box-2"} and sorted(c.label for c in outcome.claims) == ["1", "2", "3"]
    # Two idle left anywhere on one host: box-3's.
    second = claim(service, "2xany", user="U2")
    assert [f"{c.host}:{c.label}" for c in second.claims] == ["box-3:0", "box-3:1"]
    # Then only busy ones are left, one per host: no host has two free.
    claim(service, "box-1:1", user="U3")
    with pytest.raises(NoHostWithFree) as none:
        claim(service, "2xany", user="U4")
    assert "No host has 2 free GPUs" in none.value.message and "at most 1" in none.value.message


def test_n_any_on_a_named_host(service: ClaimService) -> None:
    outcome = claim(service, "box-2:2xany")
    assert [c.label for c in outcome.claims] == ["1", "2"]
    with pytest.raises(NoHostWithFree):
        claim(service, "box-3:3xany")


def test_a_mig_slice_on_a_named_host(store: InMemoryClaimStore, clock: FakeClock) -> None:
    mig = HostSample(
        "box-2",
        "550",
        (
            GpuSample(0, "GPU-M", name="A100", mig_enabled=True),
            GpuSample(0, "MIG-M-1", name="A100", mig_index=1, parent_uuid="GPU-M", mig_profile="3g.40gb"),
            GpuSample(0, "MIG-M-2", name="A100", mig_index=2, parent_uuid="GPU-M", mig_profile="3g.40gb"),
        ),
    )
    service = ClaimService(store, clock, ClaimPolicy(), host="box-1")
    service.sync_inventory(LOCAL)
    service.fleet_reported([HostReport("box-2", HostRole.AGENT, clock.now(), mig)])
    outcome = claim(service, "box-2:0.2")
    assert outcome.claims[0].label == "0.2" and outcome.cuda_devices.value == "MIG-M-2"
    with pytest.raises(AlreadyHeld) as held:
        claim(service, "box-2:0", user="U2")
    assert held.value.held_label == "box-2:0.2"


def test_release_all_and_buttons_reach_every_host_and_due_work_expires_them(
    service: ClaimService, store: InMemoryClaimStore, clock: FakeClock
) -> None:
    claim(service, "box-1:1")
    remote = claim(service, "box-2:2").claims[0]
    extended = service.extend("U1", sel("box-2:2"), HOUR)
    assert extended.claims[0].ends_at == remote.ends_at + HOUR and extended.several_hosts
    with pytest.raises(NotClaimed) as not_claimed:
        service.extend("U1", sel("box-2:3"), HOUR)
    assert not_claimed.value.gpu_label == "box-2:3"
    assert service.release_claim("U1", remote.id).released[0].id == remote.id
    third = claim(service, "box-3:1").claims[0]
    clock.advance(2 * HOUR)
    report = service.process_due()
    assert {c.host for c in report.expired} == {"box-1", "box-3"} and third.id in {c.id for c in report.expired}
    service.fleet_reported(reports(clock))
    claim(service, "box-2:1")
    assert len(service.release("U1", None).released) == 1


def test_the_home_summarises_the_fleet_and_shows_the_picked_host(service: ClaimService) -> None:
    claim(service, "box-2:1")
    home = service.home("U1", LOCAL)
    assert isinstance(home, FleetHome) and home.expanded is None
    assert [c.host for c in home.own_claims] == ["box-2"]
    picked = service.home("U1", LOCAL, expanded="box-3")
    assert isinstance(picked, FleetHome) and picked.expanded is not None and picked.expanded.host == "box-3"


def test_one_host_works_as_before_with_bare_indices(store: InMemoryClaimStore, clock: FakeClock) -> None:
    service = ClaimService(store, clock, ClaimPolicy(), host="box-1")
    service.sync_inventory(LOCAL)
    # Its own report, and GPUs left under an old name that never reports, make no second host.
    store.sync_gpus("old-name", [], clock.now())
    service.fleet_reported([HostReport("box-1", HostRole.SERVE, clock.now(), LOCAL)])
    outcome = claim(service, "1")
    assert not outcome.several_hosts and outcome.claims[0].host == "box-1"
    assert isinstance(service.home("U1", LOCAL), HomeState)
    assert claim(service, "box-1:0", user="U2").claims[0].label == "0"


def test_a_daemon_without_gpus_is_no_host_of_the_fleet(store: InMemoryClaimStore, clock: FakeClock) -> None:
    service = ClaimService(store, clock, ClaimPolicy(), host="front")
    service.sync_inventory(HostSample("front", None, ()))
    assert service.fleet(None).names == ("front",)
    service.fleet_reported([HostReport("box-2", HostRole.AGENT, clock.now(), SECOND)])
    assert service.fleet(None).names == ("box-2",)
    assert claim(service, "0").claims[0].host == "box-2"


def test_no_host_online_is_said_plainly(store: InMemoryClaimStore, clock: FakeClock) -> None:
    service = ClaimService(store, clock, ClaimPolicy(), host="front", host_timeout=TIMEOUT)
    service.fleet_reported([HostReport("box-2", HostRole.AGENT, clock.now() - HOUR, SECOND)])
    with pytest.raises(ClaimRefused, match="No host of the fleet is online"):
        claim(service, "any")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("box-2:0,2", GpuSelection(labels=("0", "2"), host="box-2")),
        ("gpu.lab_1:0.2", GpuSelection(labels=("0.2",), host="gpu.lab_1")),
        ("2xany", GpuSelection(any_free=True, count=2)),
        ("box-2:3XANY", GpuSelection(any_free=True, host="box-2", count=3)),
        ("box-2:any", GpuSelection(any_free=True, host="box-2")),
    ],
)
def test_host_sel_and_n_any_parse(text: str, expected: GpuSelection) -> None:
    assert parse_gpu_selection(text, allow_any=True) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (":0", "is not a host name"),
        ("-box:0", "is not a host name"),
        ("box-2:", "Say which GPU of `box-2`"),
        ("0xany", "asks for 0 GPUs"),
        ("box:2:0", "is not a GPU"),
    ],
)
def test_bad_host_sel_is_refused_with_the_form(text: str, says: str) -> None:
    with pytest.raises(CommandError, match=says):
        parse_gpu_selection(text, allow_any=True)
    with pytest.raises(CommandError, match="only works with claim"):
        parse_gpu_selection("box-2:2xany", allow_any=False)


def test_status_and_realtime_take_a_host() -> None:
    assert parse_command("status box-2") == StatusCommand("box-2")
    assert parse_command("rt box-2") == RealtimeCommand("box-2")
    assert parse_command("status") == StatusCommand()
    with pytest.raises(CommandError) as bad:
        parse_command("status a b")
    assert bad.value.usage == ("status",)


def test_the_other_hosts_new_samples_are_handed_back_once_each_for_their_trends(store, clock):
    service = ClaimService(store, clock, ClaimPolicy(), host="box-1", host_timeout=TIMEOUT)
    service.sync_inventory(LOCAL)

    first = service.fleet_reported(reports(clock))
    again = service.fleet_reported(reports(clock))
    clock.advance(timedelta(seconds=2))
    later = service.fleet_reported(reports(clock))

    # Never this host's own (its sampler records it); each other host's sample once per report.
    assert first == [SECOND, THIRD]
    assert again == []
    assert later == [SECOND, THIRD]
