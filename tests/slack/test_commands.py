"""`/gpu` answers at the listener level: real service and in-memory store, no Slack."""

import asyncio
import json
import time
from zoneinfo import ZoneInfo

import pytest

from gpubot.core.history import UtilizationHistory
from gpubot.core.load import LoadThresholds
from gpubot.core.models import GpuSample, HostSample, ProcessSample
from gpubot.core.policy import ClaimPolicy
from gpubot.core.service import ClaimService
from gpubot.core.slack_events import SlackEvents
from gpubot.slack import gateway as gateway_module
from gpubot.slack.gateway import ServiceGateway
from gpubot.slack.home import HomeTab
from gpubot.slack.slash_commands import OpenClaimForm, Reply, SlashCommands
from gpubot.slack.tasks import AfterAck
from tests.fakes import FakeClock, InMemoryClaimStore, usage_reports


class SlowStore(InMemoryClaimStore):
    """A store whose reads hang, as a database behind a stalled network would."""

    delay_s = 0.0

    def list_gpus(self, host=None):
        time.sleep(self.delay_s)
        return super().list_gpus(host)


class Names:
    def learn(self, user_ids):
        pass


class Home(HomeTab):
    """Records the refreshes a change asks for instead of publishing."""

    def __init__(self):
        super().__init__(None, None, UtilizationHistory(), ZoneInfo("UTC"), LoadThresholds(), AfterAck())
        self.refreshed: list[list[str]] = []

    def refresh_each(self, concerned, acted=None, flash=None):
        self.refreshed.append(sorted(concerned))


def make_commands(store, sample=None):
    clock = FakeClock()
    service = ClaimService(store, clock, ClaimPolicy(), "box")
    service.sync_inventory(HostSample("box", None, (GpuSample(0, "GPU-0", name="H100"),)))
    home = Home()
    gateway = ServiceGateway(
        service, lambda: sample, Names(), events=SlackEvents(store, clock), usage=usage_reports(store, clock)
    )
    commands = SlashCommands(gateway, home, ZoneInfo("UTC"), LoadThresholds())
    return commands, home.refreshed


def answer(commands, text):
    reply = asyncio.run(commands.answer("U1", text))
    assert isinstance(reply, Reply)
    return reply.message


def test_a_claim_answers_and_reports_the_change():
    commands, changed = make_commands(InMemoryClaimStore())
    message = answer(commands, "claim 0 train 1h")
    assert "CUDA_VISIBLE_DEVICES=0" in json.dumps(message.blocks)
    assert changed == [["U1"]]


def test_claim_with_nothing_after_it_opens_the_form_instead_of_replying():
    commands, changed = make_commands(InMemoryClaimStore())
    assert asyncio.run(commands.answer("U1", "claim")) == OpenClaimForm()
    assert changed == []


def test_a_database_slower_than_slack_waits_gets_an_answer_in_time(monkeypatch):
    monkeypatch.setattr(gateway_module, "ACK_DEADLINE_S", 0.2)
    store = SlowStore()
    commands, _ = make_commands(store)
    store.delay_s = 1.0

    async def timed_answer():
        started = time.monotonic()
        reply = await commands.answer("U1", "status")
        return reply.message, time.monotonic() - started

    message, took_s = asyncio.run(timed_answer())
    assert took_s < 0.9  # the reply did not wait for the stalled read
    assert "answering slowly" in json.dumps(message.blocks)


@pytest.mark.parametrize("text", ["frobnicate", "claim 5 x", "release 0"])
def test_refusals_are_replies_not_exceptions(text):
    commands, changed = make_commands(InMemoryClaimStore())
    message = answer(commands, text)
    assert "⚠️" in json.dumps(message.blocks, ensure_ascii=False)
    assert changed == []


def test_a_claim_is_judged_on_the_latest_telemetry():
    job = ProcessSample(1234, "python", 9000, "alice")
    busy = HostSample("box", None, (GpuSample(0, "GPU-0", utilization_gpu_pct=95, processes=(job,)),))
    commands, _ = make_commands(InMemoryClaimStore(), sample=busy)
    reply = json.dumps(answer(commands, "claim 0 train 1h").blocks)
    assert "CUDA_VISIBLE_DEVICES=0" in reply and "GPU 0 is in use by alice's process python (pid 1234)" in reply

    lost = HostSample("box", None, (GpuSample(0, "GPU-0", lost=True),))
    commands, changed = make_commands(InMemoryClaimStore(), sample=lost)
    reply = json.dumps(answer(commands, "claim 0 train 1h").blocks)
    assert "GPU 0 is not responding" in reply and changed == []
