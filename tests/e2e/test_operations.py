"""The host's view of a running bot: host commands beside `gpubot serve`, and the manifest it answers to."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gpubot.slack.manifest import BOT_EVENTS, SLASH_COMMAND
from gpubot.standin import SlackStandin

from .conftest import start_daemon

ROOT_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def slack():
    with SlackStandin() as standin:
        yield standin


def host_command(daemon, *argv: str) -> subprocess.CompletedProcess[str]:
    """A host command with the daemon's settings but no Slack tokens, as an admin on the host runs it."""
    env = {key: value for key, value in daemon.env.items() if not key.startswith("SLACK_")}
    return subprocess.run([sys.executable, "-m", "gpubot", *argv], env=env, capture_output=True, text=True, timeout=30)


def test_a_release_from_the_host_reaches_the_holder_through_the_running_daemon(slack, tmp_path):
    daemon = start_daemon(slack, tmp_path)
    try:
        slack.command("claim 1 long training run 4h", user_id="U0ALICE")
        # The daemon looks the holder's name up after the ack and keeps it where the host CLI reads it.
        slack.wait_for_call("users.info", lambda call: call.params.get("user") == "U0ALICE", timeout=10)
        deadline = time.monotonic() + 10
        while True:
            status = host_command(daemon, "status")
            assert status.returncode == 0 and "long training run" in status.stdout, status.stderr
            if "u0alice (U0ALICE)" in status.stdout or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "u0alice (U0ALICE)" in status.stdout, status.stdout

        released = host_command(daemon, "release", "1", "--force")
        assert released.returncode == 0, released.stderr
        assert "released GPU 1, held by u0alice (U0ALICE)" in released.stdout

        # Queued in the outbox by the CLI, delivered by the daemon's sender on its next poll.
        dm = slack.wait_for_call(
            "chat.postMessage",
            lambda call: call.params.get("channel") == "DU0ALICE" and "was released by" in str(call.params),
            timeout=15,
        )
        assert "on the GPU host" in str(dm.params["blocks"])
        assert "4 of 4 GPUs free" in str(slack.command("status", user_id="U0BOB").payload)
    finally:
        assert daemon.stop()[0] == 0


def test_the_daemon_handles_every_command_and_event_the_manifest_subscribes_to(slack, tmp_path):
    manifest = yaml.safe_load((ROOT_DIR / "manifest.yml").read_text())
    daemon = start_daemon(slack, tmp_path)
    try:
        for command in manifest["features"]["slash_commands"]:
            assert command["command"] == SLASH_COMMAND
            assert slack.command("help", command=command["command"]).payload is not None
        assert manifest["settings"]["event_subscriptions"]["bot_events"] == list(BOT_EVENTS)
        assert BOT_EVENTS == ("app_home_opened",)
        slack.open_home("U0MANIFEST")
        slack.wait_for_call("views.publish", lambda call: call.params.get("user_id") == "U0MANIFEST")
    finally:
        assert daemon.stop()[0] == 0
    # Bolt logs every request no listener took; there must be none.
    assert "Unhandled request" not in daemon.log()
