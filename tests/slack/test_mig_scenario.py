"""Claiming a MIG slice through the real Bolt app: the reply hands back its MIG UUID, and its card is then refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from gpubot.core.models import GpuSample, HostSample
from gpubot.slack import actions
from gpubot.standin import SlackStandin
from gpubot.standin import payloads as p
from tests.slack.harness import InProcessApp

ALICE = "U0ALICE"
BOB = "U0BOB"
URL = "http://standin.invalid/response/1"
# Card 0 a plain H100; card 1 an A100 in MIG mode with slices 1.1 and 1.2.
MIG_HOST = HostSample(
    "box",
    "550",
    (
        GpuSample(0, "GPU-0", name="H100", utilization_gpu_pct=0),
        GpuSample(1, "GPU-1", name="A100", mig_enabled=True),
        GpuSample(1, "MIG-aaaa-1", name="A100", mig_index=1, parent_uuid="GPU-1", mig_profile="3g.40gb"),
        GpuSample(1, "MIG-aaaa-2", name="A100", mig_index=2, parent_uuid="GPU-1", mig_profile="1g.10gb"),
    ),
)


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackStandin]:
    with SlackStandin() as standin:
        yield standin


@pytest.fixture
def gpubot(slack: SlackStandin) -> InProcessApp:
    slack.clear_calls()
    return InProcessApp(slack, sample=MIG_HOST)


def run(gpubot: InProcessApp, *bodies: Any) -> list[Any]:
    async def main() -> list[Any]:
        return [(await gpubot.dispatch(body)).body for body in bodies]

    return asyncio.run(main())


def test_claiming_a_slice_hands_back_its_mig_uuid_and_its_card_is_then_refused(gpubot: InProcessApp) -> None:
    (claimed,) = run(gpubot, p.slash_command("claim 1.2 training 2h", response_url=URL, user_id=ALICE))
    text = json.dumps(claimed, ensure_ascii=False)
    assert "GPU 1.2" in text and "CUDA_VISIBLE_DEVICES=MIG-aaaa-2" in text
    [held] = gpubot.store.active_claims("box")
    assert (held.label, held.gpu_uuid, held.parent_gpu_uuid) == ("1.2", "MIG-aaaa-2", "GPU-1")

    (refused,) = run(gpubot, p.slash_command("claim 1 eval", response_url=URL, user_id=BOB))
    assert "GPU 1 is taken: GPU 1.2 is claimed by <@U0ALICE>" in json.dumps(refused, ensure_ascii=False)
    assert len(gpubot.store.active_claims("box")) == 1

    (other,) = run(gpubot, p.slash_command("claim 1.1 eval", response_url=URL, user_id=BOB))
    assert "CUDA_VISIBLE_DEVICES=MIG-aaaa-1" in json.dumps(other)


def test_status_lists_the_slices_and_the_claim_form_offers_them(gpubot: InProcessApp, slack: SlackStandin) -> None:
    (status,) = run(gpubot, p.slash_command("status", response_url=URL, user_id=ALICE))
    text = json.dumps(status, ensure_ascii=False)
    assert "*GPU 1.1* · MIG 3g.40gb" in text and "*GPU 1.2* · MIG 1g.10gb" in text

    run(gpubot, p.block_actions(actions.claim_gpu_action_id("1.2"), "1.2", user_id=BOB))
    (opened,) = slack.calls("views.open")
    select = opened.params["view"]["blocks"][0]["element"]
    assert [o["value"] for o in select["options"]] == ["0", "1", "1.1", "1.2"]
    assert [o["value"] for o in select["initial_options"]] == ["1.2"]


def test_the_claim_form_claims_a_slice(gpubot: InProcessApp, slack: SlackStandin) -> None:
    values: dict[str, Any] = {
        actions.GPUS_INPUT: {
            actions.GPUS_INPUT: {"type": "multi_static_select", "selected_options": [{"value": "1.1"}]}
        },
        actions.PURPOSE_INPUT: {actions.PURPOSE_INPUT: {"type": "plain_text_input", "value": "ablation"}},
        actions.DURATION_INPUT: {
            actions.DURATION_INPUT: {"type": "static_select", "selected_option": {"value": "7200"}}
        },
    }
    (ack,) = run(gpubot, p.view_submission(actions.CLAIM_MODAL_CALLBACK, values, user_id=BOB))
    assert ack is None
    assert [claim.label for claim in gpubot.store.active_claims("box")] == ["1.1"]


@pytest.mark.parametrize("value", ["1.2.3", "1.", "x", "1-2"])
def test_a_forged_claim_form_value_is_refused(gpubot: InProcessApp, value: str) -> None:
    values: dict[str, Any] = {
        actions.GPUS_INPUT: {
            actions.GPUS_INPUT: {"type": "multi_static_select", "selected_options": [{"value": value}]}
        },
        actions.PURPOSE_INPUT: {actions.PURPOSE_INPUT: {"type": "plain_text_input", "value": "x"}},
        actions.DURATION_INPUT: {
            actions.DURATION_INPUT: {"type": "static_select", "selected_option": {"value": "7200"}}
        },
    }
    (ack,) = run(gpubot, p.view_submission(actions.CLAIM_MODAL_CALLBACK, values, user_id=BOB))
    assert ack["response_action"] == "errors"
    assert gpubot.store.active_claims("box") == []


def test_the_forms_confirmation_dm_of_a_whole_mig_card_lists_its_slices(
    gpubot: InProcessApp, slack: SlackStandin
) -> None:
    values: dict[str, Any] = {
        actions.GPUS_INPUT: {actions.GPUS_INPUT: {"type": "multi_static_select", "selected_options": [{"value": "1"}]}},
        actions.PURPOSE_INPUT: {actions.PURPOSE_INPUT: {"type": "plain_text_input", "value": "all of it"}},
        actions.DURATION_INPUT: {
            actions.DURATION_INPUT: {"type": "static_select", "selected_option": {"value": "7200"}}
        },
    }
    run(gpubot, p.view_submission(actions.CLAIM_MODAL_CALLBACK, values, user_id=BOB))
    slack.clear_calls()
    assert asyncio.run(gpubot.deliver_notices()) == 1
    (dm,) = slack.calls("chat.postMessage")
    text = json.dumps(dm.params, ensure_ascii=False)
    assert "CUDA_VISIBLE_DEVICES=MIG-aaaa-1,MIG-aaaa-2" in text and "one MIG device" in text
