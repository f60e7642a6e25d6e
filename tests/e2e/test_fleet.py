"""A fleet end to end: two `gpubot serve` and one `gpubot agent`, three hosts, one PostgreSQL database.

The stand-in hands each envelope to one random live Socket Mode connection, as Slack does, so any daemon may
answer any command; what they answer must be the fleet's, and nothing may be lost or done twice.
"""

from __future__ import annotations

import copy
import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gpubot.standin import SlackStandin, payloads
from gpubot.standin.calls import Ack
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from tests.postgres import scratch_database

from .conftest import FAKE_GPUS, Daemon, reply_text, start_daemon
from .test_agent import Agent, start_agent
from .test_home_and_expiry import dms_to, wait_for_dm

pytestmark = pytest.mark.postgres

SERVES = ("box-a", "box-b")
AGENT = "box-c"
HOSTS = (*SERVES, AGENT)
# Short, so that an agent killed shows offline within seconds (the time-out must be at least two intervals).
FAST = {"GPUBOT_TELEMETRY_INTERVAL": "1s", "GPUBOT_HOST_TIMEOUT": "3s"}


def host_gpus(name: str) -> dict[str, object]:
    """The fake host of the e2e tests, named `name`, with UUIDs of its own (GPU 3 lost)."""
    gpus = copy.deepcopy(FAKE_GPUS)
    gpus["hostname"] = name
    for gpu in gpus["gpus"]:  # type: ignore[attr-defined]
        gpu["uuid"] = f"GPU-{name}-{gpu['index']}"
    return gpus


def host_state(tmp_path: Path, name: str) -> Path:
    state = tmp_path / name
    state.mkdir(exist_ok=True)
    (state / "gpus.json").write_text(json.dumps(host_gpus(name)))
    return state


@dataclass
class Fleet:
    slack: SlackStandin
    url: str
    serves: list[Daemon]
    agent: Agent

    def store(self) -> SqlClaimStore:
        return SqlClaimStore(make_engine(self.url))

    def stop(self) -> None:
        for daemon in self.serves:
            if daemon.process.poll() is None:
                code, _ = daemon.stop()
                assert code == 0, daemon.log()
        if self.agent.process.poll() is None:
            assert self.agent.stop() == 0, self.agent.log()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with SlackStandin() as slack, scratch_database() as url:
        shared = {"GPUBOT_DATABASE_URL": url, **FAST}
        serves: list[Daemon] = []
        agent = None
        try:
            for count, name in enumerate(SERVES, start=1):
                serves.append(start_daemon(slack, host_state(tmp_path, name), GPUBOT_HOST_NAME=name, **shared))
                slack.wait_live(count, timeout=30)
            agent_state = host_state(tmp_path, AGENT)
            agent = start_agent(
                agent_state,
                url,
                GPUBOT_HOST_NAME=AGENT,
                GPUBOT_FAKE_GPUS=str(agent_state / "gpus.json"),
                **FAST,
            )
            running = Fleet(slack, url, serves, agent)
            _wait_until(lambda: _online_hosts(running) == set(HOSTS), "all three hosts report", agent)
            # Each daemon reads the other hosts' reports once per telemetry interval.
            _wait_until(lambda: _both_daemons_see_every_host(slack), "both daemons list every host", agent)
            yield running
            running.stop()
        finally:
            for process in [daemon.process for daemon in serves] + ([agent.process] if agent else []):
                if process.poll() is None:
                    process.kill()
                    process.wait()


def _online_hosts(fleet: Fleet) -> set[str]:
    store = fleet.store()
    return {host.name for host in store.hosts() if host.sample is not None}


def _both_daemons_see_every_host(slack: SlackStandin, hosts: tuple[str, ...] = HOSTS) -> bool:
    acks = commands(slack, [("U0BOB", "status")] * 8)
    seeing = {ack.connection for ack in acks if all(f"*{host}*" in reply_text(ack) for host in hosts)}
    return seeing == {ack.connection for ack in acks} and len(seeing) == 2


def _wait_until(condition, what: str, agent: Agent | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if agent is not None:
            assert agent.process.poll() is None, agent.log()
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting until {what}")


def commands(slack: SlackStandin, texts: list[tuple[str, str]], timeout: float = 20) -> list[Ack]:
    """Send `(user, text)` slash commands all at once; each goes to a random live daemon."""
    envelopes = [
        ("slash_commands", payloads.slash_command(text, response_url=slack.new_response_url(), user_id=user))
        for user, text in texts
    ]
    return slack.send_many(envelopes, timeout=timeout)


def test_either_daemon_answers_status_for_the_whole_fleet(fleet):
    acks = commands(fleet.slack, [("U0BOB", "status")] * 16)

    assert len({ack.connection for ack in acks}) == 2, "both daemons should have answered some"
    for ack in acks:
        text = reply_text(ack)
        assert all(f"*{host}*" in text for host in HOSTS), text


def test_a_claim_on_the_agents_host_names_it_and_every_daemon_shows_it(fleet):
    claimed = reply_text(fleet.slack.command(f"claim {AGENT}:1 render frames 2h", user_id="U0ALICE"))
    assert f"You have *GPU 1* on *{AGENT}*" in claimed and "CUDA_VISIBLE_DEVICES=1" in claimed, claimed

    # The other daemon learns of the claim when its notification arrives: within milliseconds, not at once.
    def both_daemons_show_it() -> bool:
        acks = commands(fleet.slack, [("U0BOB", f"status {AGENT}")] * 10)
        shown = all("<@U0ALICE>" in reply_text(ack) and "render frames" in reply_text(ack) for ack in acks)
        return shown and len({ack.connection for ack in acks}) == 2

    _wait_until(both_daemons_show_it, "both daemons show the claim", timeout=10)


def test_fifty_claims_of_one_gpu_over_both_daemons_have_one_winner(fleet):
    users = [f"U{n:06d}" for n in range(50)]
    acks = commands(fleet.slack, [(user, "claim box-a:1 race 1h") for user in users], timeout=60)

    assert len({ack.connection for ack in acks}) == 2
    replies = [reply_text(ack) for ack in acks]
    winners = [user for user, reply in zip(users, replies, strict=True) if "You have *GPU 1*" in reply]
    assert len(winners) == 1, replies
    refusals = [reply for reply in replies if f"<@{winners[0]}>" in reply and "You have" not in reply]
    assert len(refusals) == 49, replies
    active = [claim for claim in fleet.store().active_claims() if claim.host == "box-a"]
    assert [(claim.gpu_index, claim.user_id) for claim in active] == [(1, winners[0])]


def test_warning_and_expiry_dms_go_out_once_each_with_two_daemons(tmp_path):
    short = {"GPUBOT_MIN_DURATION": "1s", "GPUBOT_WARN_BEFORE": "4s"}
    with SlackStandin() as slack, scratch_database() as url:
        serves = [
            start_daemon(slack, host_state(tmp_path, name), GPUBOT_HOST_NAME=name, GPUBOT_DATABASE_URL=url, **short)
            for name in SERVES
        ]
        try:
            slack.wait_live(2, timeout=30)
            _wait_until(lambda: _both_daemons_see_every_host(slack, SERVES), "both daemons list both hosts")
            acks = commands(slack, [("U0ALICE", "claim box-a:1 short job 8s"), ("U0BOB", "claim box-b:2 other 8s")])
            assert all("You have" in reply_text(ack) for ack in acks), [reply_text(ack) for ack in acks]
            for user in ("U0ALICE", "U0BOB"):
                wait_for_dm(slack, user, "free again", timeout=30)
            time.sleep(3)  # a second sender, or a second tick, would have sent its copy by now
            for user in ("U0ALICE", "U0BOB"):
                assert len(dms_to(slack, user, lambda text: "ends" in text and "Extend" in text)) == 1
                assert len(dms_to(slack, user, lambda text: "free again" in text)) == 1
        finally:
            for daemon in serves:
                assert daemon.stop()[0] == 0, daemon.log()


def test_kill_9_of_one_daemon_mid_load_loses_nothing_acknowledged_and_the_survivor_answers(fleet):
    slack = fleet.slack
    gpus = [f"{host}:{index}" for host in HOSTS for index in (0, 1, 2)]
    answered: list[tuple[str, str]] = []
    unanswered: list[str] = []
    victim = fleet.serves[0]

    def load() -> None:
        for n, gpu in enumerate(gpus):
            user = f"U0LOAD{n}"
            try:
                ack = slack.command(f"claim {gpu} load {n} 1h", user_id=user, timeout=5)
                answered.append((user, reply_text(ack)))
            except Exception:  # an envelope handed to the daemon as it died: Slack would show the person an error
                unanswered.append(user)

    sender = threading.Thread(target=load)
    sender.start()
    _wait_until(lambda: len(answered) >= 3, "some claims were answered")
    victim.process.send_signal(signal.SIGKILL)
    sender.join(timeout=90)
    assert not sender.is_alive()

    slack.wait_live(1, timeout=10)
    held = {claim.user_id for claim in fleet.store().active_claims()}
    for user, reply in answered:
        if "You have" in reply:
            assert user in held, f"{user} was told they have a GPU, but the database lost it"
    assert len(unanswered) <= 2, unanswered  # only what was in flight when the daemon died

    after = commands(slack, [("U0BOB", "status")] * 10)
    assert len({ack.connection for ack in after}) == 1
    assert all(f"*{AGENT}*" in reply_text(ack) for ack in after)
    fleet.serves.remove(victim)


def test_a_host_that_stops_reporting_goes_offline_its_gpus_refused_its_claims_kept(fleet):
    slack = fleet.slack
    kept = reply_text(slack.command(f"claim {AGENT}:1 long job 4h", user_id="U0ALICE"))
    assert "You have" in kept
    fleet.agent.process.send_signal(signal.SIGKILL)
    fleet.agent.process.wait()

    def both_daemons_say_offline() -> bool:
        acks = commands(slack, [("U0BOB", "status")] * 8)
        return len({ack.connection for ack in acks}) == 2 and all("*offline*" in reply_text(ack) for ack in acks)

    _wait_until(both_daemons_say_offline, "both daemons show the host offline")
    for ack in commands(slack, [("U0BOB", f"status {AGENT}")] * 6):
        status = reply_text(ack)
        assert "*Offline*: last report" in status and "<@U0ALICE>" in status and "long job" in status, status
    for ack in commands(slack, [(f"U0NEW{n}", f"claim {AGENT}:2 new job 1h") for n in range(6)]):
        assert f"Host {AGENT} is offline" in reply_text(ack), reply_text(ack)
    assert [c.user_id for c in fleet.store().active_claims() if c.host == AGENT] == ["U0ALICE"]
