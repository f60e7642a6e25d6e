"""Two hosts' samples in the store, through the real Bolt app: fleet status, HOST:SEL, the forms' host menus."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from gpubot.core.models import GpuSample, HostRole, HostSample
from gpubot.slack import actions
from gpubot.standin import SlackStandin
from gpubot.standin import payloads as p
from tests.slack.harness import InProcessApp

ALICE = "U0ALICE"
BOB = "U0BOB"
URL = "http://standin.invalid/response/1"
# This daemon's own host "box", and an agent's host "box-2" whose samples come from its reports.
BOX = HostSample("box", "550", tuple(GpuSample(i, f"GPU-{i}", name="H100", utilization_gpu_pct=0) for i in range(2)))
BOX_2 = HostSample("box-2", "550", tuple(GpuSample(i, f"B2-{i}", name="A100", utilization_gpu_pct=0) for i in range(4)))


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackStandin]:
    with SlackStandin() as standin:
        yield standin


@pytest.fixture
def gpubot(slack: SlackStandin) -> InProcessApp:
    slack.clear_calls()
    app = InProcessApp(slack, sample=BOX)
    report(app, seconds_ago=1)
    return app


def report(app: InProcessApp, seconds_ago: float) -> None:
    """Both hosts report to the store, box-2 last `seconds_ago`; the daemon's job hands the reports over."""
    now = app.clock.now()
    for name, role, sample, at in (
        ("box", HostRole.SERVE, BOX, now),
        ("box-2", HostRole.AGENT, BOX_2, now - timedelta(seconds=seconds_ago)),
    ):
        app.store.register_host(name, role, f"{name}-instance", f"gpubot on {name}", at, timedelta(seconds=30))
        assert app.store.report(name, f"{name}-instance", sample, at)
    app.service.fleet_reported(app.store.hosts())


def run(gpubot: InProcessApp, *bodies: Any) -> list[Any]:
    async def main() -> list[Any]:
        return [(await gpubot.dispatch(body)).body for body in bodies]

    return asyncio.run(main())


def text_of(reply: Any) -> str:
    return json.dumps(reply, ensure_ascii=False)


def form_values(value: str, menu: str) -> dict[str, Any]:
    return {
        actions.GPUS_INPUT: {menu: {"type": "multi_static_select", "selected_options": [{"value": value}]}},
        actions.PURPOSE_INPUT: {actions.PURPOSE_INPUT: {"type": "plain_text_input", "value": "ablation"}},
        actions.DURATION_INPUT: {
            actions.DURATION_INPUT: {"type": "static_select", "selected_option": {"value": "7200"}}
        },
    }


def test_status_answers_for_the_fleet_and_a_named_host_in_full(gpubot: InProcessApp) -> None:
    fleet, one = run(
        gpubot,
        p.slash_command("status", response_url=URL, user_id=ALICE),
        p.slash_command("status box-2", response_url=URL, user_id=ALICE),
    )
    text = text_of(fleet)
    assert "*6 of 6 GPUs free* on 2 hosts" in text and "*box* · 2 of 2 free" in text and "*box-2* · 4 of 4 free" in text
    assert "GPUs on box-2" in text_of(one) and "*GPU 3* · A100" in text_of(one)
    (unknown,) = run(gpubot, p.slash_command("status box-9", response_url=URL, user_id=ALICE))
    assert "no host `box-9` in the fleet (hosts: box, box-2)" in text_of(unknown)


def test_a_bare_gpu_is_refused_and_host_sel_claims_there_with_the_line_for_that_host(gpubot: InProcessApp) -> None:
    (refused,) = run(gpubot, p.slash_command("claim 1 training 2h", response_url=URL, user_id=ALICE))
    assert "The fleet has 2 hosts" in text_of(refused) and "`box:1`" in text_of(refused)
    assert gpubot.store.active_claims() == []

    (claimed,) = run(gpubot, p.slash_command("claim box-2:1 training 2h", response_url=URL, user_id=ALICE))
    text = text_of(claimed)
    assert (
        "*GPU 1* on *box-2*" in text
        and "On box-2, use it with `CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=1`" in text
    )
    (two,) = run(gpubot, p.slash_command("claim 2xany eval 1h", response_url=URL, user_id=BOB))
    # Both hosts have two idle GPUs free: the first host by name.
    assert {c.host for c in gpubot.store.active_claims() if c.user_id == BOB} == {"box"}
    assert "*GPUs 0,1* on *box*" in text_of(two)
    (four,) = run(gpubot, p.slash_command("claim 4xany eval 1h", response_url=URL, user_id=BOB))
    assert "No host has 4 free GPUs right now (at most 3 on one host)" in text_of(four)
    (released,) = run(gpubot, p.slash_command("release box-2:1", response_url=URL, user_id=ALICE))
    assert "Released GPU box-2:1" in text_of(released)


def test_an_offline_host_is_shown_so_and_refused(gpubot: InProcessApp) -> None:
    run(gpubot, p.slash_command("claim box-2:0 training 2h", response_url=URL, user_id=ALICE))
    gpubot.clock.advance(timedelta(minutes=5))
    report(gpubot, seconds_ago=300)
    status, refused = run(
        gpubot,
        p.slash_command("status", response_url=URL, user_id=ALICE),
        p.slash_command("claim box-2:1 eval", response_url=URL, user_id=BOB),
    )
    assert "⚫ *box-2* · *offline*, last report <!date^" in text_of(status) and "4 GPUs, 1 held" in text_of(status)
    assert "Host box-2 is offline" in text_of(refused)
    # `any` takes a GPU of a host that reports.
    (any_reply,) = run(gpubot, p.slash_command("claim any eval", response_url=URL, user_id=BOB))
    assert "on *box*" in text_of(any_reply)


def test_the_claim_form_picks_a_host_then_its_gpus(gpubot: InProcessApp, slack: SlackStandin) -> None:
    run(gpubot, p.block_actions(actions.CLAIM_FORM, "open", user_id=BOB))
    (opened,) = slack.calls("views.open")
    host_menu, gpus = opened.params["view"]["blocks"][:2]
    assert [o["value"] for o in host_menu["element"]["options"]] == ["box", "box-2"]
    assert [o["value"] for o in gpus["element"]["options"]] == ["box:0", "box:1"]

    run(
        gpubot,
        p.block_actions(actions.HOST_INPUT, selected_option="box-2", user_id=BOB, view_id="V0FORM", in_modal=True),
    )
    (updated,) = slack.calls("views.update")
    assert updated.params["view_id"] == "V0FORM"
    menu = updated.params["view"]["blocks"][1]["element"]
    assert menu["action_id"] == f"{actions.GPUS_INPUT}@box-2"
    assert [o["value"] for o in menu["options"]] == ["box-2:0", "box-2:1", "box-2:2", "box-2:3"]

    (ack,) = run(
        gpubot, p.view_submission(actions.CLAIM_MODAL_CALLBACK, form_values("box-2:2", menu["action_id"]), user_id=BOB)
    )
    assert ack is None
    assert [(c.host, c.label) for c in gpubot.store.active_claims()] == [("box-2", "2")]


def test_the_home_lists_hosts_and_shows_the_picked_one_in_full(gpubot: InProcessApp, slack: SlackStandin) -> None:
    run(gpubot, p.slash_command("claim box-2:3 training 2h", response_url=URL, user_id=ALICE))
    run(gpubot, p.app_home_opened(ALICE))
    (first,) = slack.calls("views.publish")
    text = text_of(first.params["view"])
    assert "*GPU box-2:3* · training" in text and "*box-2* · 3 of 4 free" in text and "Pick a host above" in text
    slack.clear_calls()
    run(gpubot, p.block_actions(actions.HOME_HOST, selected_option="box-2", user_id=ALICE))
    (picked,) = slack.calls("views.publish")
    buttons = [b["accessory"]["value"] for b in picked.params["view"]["blocks"] if "accessory" in b]
    assert buttons == ["box-2:0", "box-2:1", "box-2:2"]
    slack.clear_calls()
    # Its Claim button opens the form on that host with that GPU picked.
    run(gpubot, p.block_actions(actions.claim_gpu_action_id("box-2:1"), "box-2:1", user_id=ALICE))
    (opened,) = slack.calls("views.open")
    host_menu, gpus = opened.params["view"]["blocks"][:2]
    assert host_menu["element"]["initial_option"]["value"] == "box-2"
    assert [o["value"] for o in gpus["element"]["initial_options"]] == ["box-2:1"]


def test_a_forged_host_pick_changes_nothing(gpubot: InProcessApp, slack: SlackStandin) -> None:
    run(gpubot, p.block_actions(actions.HOST_INPUT, selected_option="<!here>", user_id=BOB, in_modal=True))
    run(gpubot, p.block_actions(actions.HOME_HOST, selected_option="a b", user_id=BOB))
    assert slack.calls("views.update") == [] and slack.calls("views.publish") == []
    values = form_values("box:0", "x") | {
        actions.GPUS_INPUT: {
            "x": {"type": "multi_static_select", "selected_options": [{"value": "box:0"}, {"value": "box-2:0"}]}
        }
    }
    (ack,) = run(gpubot, p.view_submission(actions.CLAIM_MODAL_CALLBACK, values, user_id=BOB))
    assert "one host" in ack["errors"][actions.GPUS_INPUT] and gpubot.store.active_claims() == []


def test_dms_name_the_gpus_host(gpubot: InProcessApp, slack: SlackStandin) -> None:
    values = form_values("box-2:1", f"{actions.GPUS_INPUT}@box-2")
    run(gpubot, p.view_submission(actions.CLAIM_MODAL_CALLBACK, values, user_id=BOB))
    assert asyncio.run(gpubot.deliver_notices()) == 1
    (confirmation,) = slack.calls("chat.postMessage")
    assert "On box-2, use it with `CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=1`" in text_of(confirmation.params)
    slack.clear_calls()
    gpubot.clock.advance(timedelta(minutes=110))
    report(gpubot, seconds_ago=1)
    gpubot.service.process_due()
    assert asyncio.run(gpubot.deliver_notices()) == 1
    (warning,) = slack.calls("chat.postMessage")
    assert "Your claim on *GPU box-2:1* (ablation) ends" in text_of(warning.params)
