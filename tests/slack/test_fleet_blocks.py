"""Block Kit at fleet scale: 32 hosts of 8 GPUs within Slack's limits and readable; one host as before."""

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from slack_sdk.models.blocks import Block as SdkBlock
from slack_sdk.models.views import View

from gpubot.core.dashboard import FleetHome, HomeState
from gpubot.core.load import LoadThresholds
from gpubot.core.models import GpuSample, HostReport, HostRole, HostSample, NewClaim, ProcessSample
from gpubot.core.policy import ClaimPolicy
from gpubot.core.service import ClaimService
from gpubot.slack import actions, fleet_messages, messages, views
from tests.fakes import FakeClock, InMemoryClaimStore

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
BERLIN = ZoneInfo("Europe/Berlin")
POLICY = ClaimPolicy()
WORST_PURPOSE = "<!channel> & <@U999> " + "x" * 180
VIEWER = "U0VIEWER"


def host_name(number: int) -> str:
    return f"gpu-node-{number:02d}"


def sample(name: str, gpus: int) -> HostSample:
    return HostSample(
        name,
        "550.54.15",
        tuple(
            GpuSample(
                i,
                f"{name}-GPU-{i}",
                name="NVIDIA H100 80GB HBM3",
                memory_total_mib=81559,
                memory_used_mib=8300 * (i % 3),
                utilization_gpu_pct=(i * 37) % 100,
                temperature_c=40 + i,
                power_draw_w=300.0,
                power_limit_w=700.0,
                processes=(ProcessSample(4242 + i, "python", 8192, "alice"),) if i % 3 else (),
            )
            for i in range(gpus)
        ),
    )


def build(hosts: int, gpus: int = 8, offline: tuple[int, ...] = ()) -> tuple[ClaimService, HostSample]:
    """A fleet of `hosts` hosts: the first this daemon's, every other GPU held (three by the viewer)."""
    clock, store = FakeClock(NOW), InMemoryClaimStore()
    local = sample(host_name(0), gpus)
    service = ClaimService(store, clock, POLICY, host=host_name(0))
    service.sync_inventory(local)
    reports = [
        HostReport(
            host_name(n),
            HostRole.AGENT,
            NOW - (timedelta(hours=1) if n in offline else timedelta(seconds=1)),
            sample(host_name(n), gpus),
        )
        for n in range(1, hosts)
    ]
    # As the daemon's job does: the hosts' GPUs are recorded from their reports.
    service.fleet_reported(reports)
    held = [gpu for gpu in store.list_gpus() if gpu.index % 2 == 0]
    store.create_claims(
        [
            NewClaim(gpu, VIEWER if n < 3 else f"U0USER{n:04d}", WORST_PURPOSE, NOW, NOW + timedelta(hours=2))
            for n, gpu in enumerate(held)
        ]
    )
    return service, local


def texts(blocks) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def within_limits(blocks, max_blocks: int) -> None:
    assert len(blocks) <= max_blocks
    for block in blocks:
        SdkBlock.parse(block).validate_json()
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        for element in block.get("elements", []):
            assert len(element.get("options", [])) <= 100


@pytest.fixture(scope="module")
def fleet_of_256():
    return build(32, offline=(7,))


def test_the_fleet_status_has_a_line_per_host_and_lists_every_held_gpu(fleet_of_256) -> None:
    service, local = fleet_of_256
    fleet = service.fleet(local)
    message = fleet_messages.status_message(fleet, None, POLICY, BERLIN)
    within_limits(message.blocks, 50)
    text = texts(message.blocks)
    assert f"*{fleet.free_count} of 256 GPUs free* on 32 hosts (1 offline)" in text
    for n in range(32):
        assert f"*{host_name(n)}*" in text
    assert f"⚫ *{host_name(7)}* · *offline*, last report <!date^" in text
    assert f"🟢 *{host_name(3)}* · 4 of 8 free" in text
    held = [f"*{host.host}:{row.gpu.label}* <@" for host in fleet.hosts for row in host.rows if row.claim]
    assert len(held) == 128 and all(line in text for line in held)
    assert "more held GPUs" not in text and "<!channel>" not in text


def test_status_of_one_host_shows_it_in_full_and_an_offline_one_says_so(fleet_of_256) -> None:
    service, local = fleet_of_256
    fleet = service.fleet(local)
    one = fleet_messages.status_message(fleet, host_name(3), POLICY, BERLIN)
    within_limits(one.blocks, 50)
    assert one.blocks[0]["text"]["text"] == f"GPUs on {host_name(3)}" and "*GPU 7* ·" in texts(one.blocks)
    offline = texts(fleet_messages.status_message(fleet, host_name(7), POLICY, BERLIN).blocks)
    assert "*Offline*: last report <!date^" in offline and "cannot be newly claimed" in offline
    realtime = texts(fleet_messages.realtime_message(fleet, host_name(7), LoadThresholds(), BERLIN).blocks)
    assert "is offline" in realtime


def test_the_fleet_realtime_lists_every_gpu_by_host(fleet_of_256) -> None:
    service, local = fleet_of_256
    message = fleet_messages.realtime_message(service.fleet(local), None, LoadThresholds(), BERLIN)
    within_limits(message.blocks, 50)
    text = texts(message.blocks)
    assert f"*{host_name(5)}:7*" in text and f"⚫ *{host_name(7)}* · *offline*" in text
    assert "more lines" not in text


def test_the_fleet_home_summarises_hosts_and_drills_into_one(fleet_of_256) -> None:
    service, local = fleet_of_256
    home = service.home(VIEWER, local)
    assert isinstance(home, FleetHome)
    view = views.home_view(home, POLICY, BERLIN, LoadThresholds(), {})
    View(**view).validate_json()
    within_limits(view["blocks"], 100)
    text = texts(view["blocks"])
    assert text.index("Your GPUs") < text.index(f"*GPU {host_name(0)}:0*") < text.index("Fleet ·")
    assert all(f"*{host_name(n)}*" in text for n in range(32))
    (menu,) = [
        b["elements"][0]
        for b in view["blocks"]
        if b["type"] == "actions" and b["elements"][0]["type"] == "static_select"
    ]
    assert menu["action_id"] == actions.HOME_HOST and len(menu["options"]) == 32 and "initial_option" not in menu
    assert "Claim" not in [e.get("text", {}).get("text") for b in view["blocks"] for e in [b.get("accessory", {})]]

    picked = service.home(VIEWER, local, expanded=host_name(5))
    view = views.home_view(picked, POLICY, BERLIN, LoadThresholds(), {})
    View(**view).validate_json()
    within_limits(view["blocks"], 100)
    buttons = [b["accessory"] for b in view["blocks"] if "accessory" in b]
    assert [b["value"] for b in buttons] == [f"{host_name(5)}:{i}" for i in (1, 3, 5, 7)]
    assert all(actions.CLAIM_GPU_PATTERN.match(b["action_id"]) for b in buttons)

    offline = views.home_view(service.home(VIEWER, local, host_name(7)), POLICY, BERLIN, LoadThresholds(), {})
    assert not [b for b in offline["blocks"] if "accessory" in b] and "*Offline*" in texts(offline["blocks"])


def test_the_claim_form_picks_a_host_then_offers_only_its_free_gpus(fleet_of_256) -> None:
    service, local = fleet_of_256
    fleet = service.fleet(local)
    modal = views.fleet_claim_modal(fleet, POLICY, host_name(4), "3")
    View(**modal).validate_json()
    host_block, gpu_block = modal["blocks"][0], modal["blocks"][1]
    assert host_block["dispatch_action"] is True and host_block["element"]["action_id"] == actions.HOST_INPUT
    hosts = [o["value"] for o in host_block["element"]["options"]]
    assert host_name(7) not in hosts and len(hosts) == 31  # the offline host is not offered
    assert host_block["element"]["initial_option"]["value"] == host_name(4)
    offered = [o["value"] for o in gpu_block["element"]["options"]]
    assert offered == [f"{host_name(4)}:{i}" for i in (1, 3, 5, 7)]
    assert [o["value"] for o in gpu_block["element"]["initial_options"]] == [f"{host_name(4)}:3"]
    # Nothing picked: the first host with a free GPU; a GPU named without its host is not guessed at.
    first = views.fleet_claim_modal(fleet, POLICY, None, "3")
    assert first["blocks"][0]["element"]["initial_option"]["value"] == host_name(0)
    assert "initial_options" not in first["blocks"][1]["element"]


def test_a_fleet_of_150_hosts_keeps_every_menu_within_100_options() -> None:
    service, local = build(150, gpus=2)
    fleet = service.fleet(local)
    last = host_name(149)
    modal = views.fleet_claim_modal(fleet, POLICY, last, None)
    menu = modal["blocks"][0]["element"]
    assert len(menu["options"]) == 100 and menu["initial_option"]["value"] == last
    home = views.home_view(service.home(VIEWER, local, last), POLICY, BERLIN, LoadThresholds(), {})
    within_limits(home["blocks"], 100)
    (select,) = [b["elements"][0] for b in home["blocks"] if b["type"] == "actions" and "options" in b["elements"][0]]
    assert len(select["options"]) == 100 and select["initial_option"]["value"] == last
    within_limits(fleet_messages.status_message(fleet, None, POLICY, BERLIN).blocks, 50)
    within_limits(fleet_messages.realtime_message(fleet, None, LoadThresholds(), BERLIN).blocks, 50)


def test_one_host_looks_as_it_did() -> None:
    service, local = build(1)
    fleet = service.fleet(local)
    assert not fleet.several
    assert fleet_messages.status_message(fleet, None, POLICY, BERLIN) == messages.status_message(
        service.dashboard(local), POLICY, BERLIN
    )
    assert fleet_messages.realtime_message(fleet, None, LoadThresholds(), BERLIN) == messages.realtime_message(
        service.dashboard(local), local, LoadThresholds()
    )
    home = service.home(VIEWER, local)
    assert isinstance(home, HomeState)
    assert views.fleet_claim_modal(fleet, POLICY, None, "1") == views.claim_modal(service.dashboard(local), POLICY, "1")
