"""`gpubot demo`: the real bot, a pretend Slack and pretend GPUs, and a short scripted session.

For a newcomer with neither a Slack workspace nor a GPU. It starts the Slack stand-in
(`gpubot.standin`) in this process and the real daemon (`gpubot serve`) as a child process, on a
temporary SQLite file and the fake GPU backend, with claim bounds of seconds rather than hours. Then
two people use it: they look at the GPUs, one claims, the other is refused, a release, and a claim
of a few seconds that gets its expiry warning and then expires. What each person sees (the bot's
replies, Home tab and DMs, all Block Kit) is printed as text.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from gpubot.core.errors import GpubotError
from gpubot.demo.block_text import render_blocks
from gpubot.standin import SlackStandin, StandinError, payloads

# Short enough that the expiry is seen within the demo; the warning comes WARN_BEFORE before the end.
CLAIM_BOUNDS = {"GPUBOT_MIN_DURATION": "5s", "GPUBOT_WARN_BEFORE": "5s", "GPUBOT_DEFAULT_DURATION": "2h"}
SHORT_CLAIM = "8s"
_START_TIMEOUT_S = 20.0
# The scheduler looks for due work every 2 s and the warning is due 5 s before the end.
_DM_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 10.0
_WIDTH = 72

DEMO_GPUS: dict[str, Any] = {
    "hostname": "demo-gpu-box",
    "driver_version": "550.54.15",
    "gpus": [
        {
            "index": index,
            "name": "NVIDIA H100 80GB HBM3",
            "uuid": f"GPU-DEMO-{index:04d}",
            "memory_total_mib": 81559,
            "memory_used_mib": used,
            "utilization_gpu_pct": utilization,
            "temperature_c": temperature,
            "power_draw_w": power,
            "power_limit_w": 700.0,
            "processes": processes,
        }
        for index, used, utilization, temperature, power, processes in [
            (0, 0, 0, 31, 69.0, []),
            (1, 61_440, 97, 78, 655.0, [{"pid": 31337, "name": "python", "used_memory_mib": 61_440, "user": "carol"}]),
            (2, 0, 0, 30, 70.0, []),
        ]
    ]
    # A card in MIG mode, shared by slice (`/gpu claim 3.1`): the views list its slices under it.
    + [
        {
            "index": 3,
            "name": "NVIDIA A100-SXM4-80GB",
            "uuid": "GPU-DEMO-0003",
            "temperature_c": 35,
            "mig_slices": [
                {
                    "mig_index": 1,
                    "profile": "3g.40gb",
                    "uuid": "MIG-DEMO-0003-1",
                    "memory_total_mib": 40192,
                    "memory_used_mib": 0,
                    "processes": [],
                },
                {
                    "mig_index": 2,
                    "profile": "3g.40gb",
                    "uuid": "MIG-DEMO-0003-2",
                    "memory_total_mib": 40192,
                    "memory_used_mib": 0,
                    "processes": [],
                },
            ],
        }
    ],
}


@dataclass(frozen=True)
class Person:
    """Someone in the pretend workspace."""

    user_id: str
    name: str


ALICE = Person("U0ALICE", "alice")
BOB = Person("U0BOB", "bob")


class DemoFailed(GpubotError):
    """The demo could not go on; the message says where it stopped."""


def run(out: TextIO, environ: Mapping[str, str]) -> int:
    """Play the demo, printing to `out`; returns 0 when every step happened as scripted.

    Args:
        out: Where the session is printed.
        environ: The environment to start the daemon from (for PATH and the like); gpubot's own
            settings in it are replaced by the demo's.

    Raises:
        DemoFailed: the daemon did not start, or a step did not happen in time.
    """
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpubot-demo-") as workdir, SlackStandin() as slack:
        state = Path(workdir)
        daemon = _start_daemon(slack, state, environ)
        try:
            _wait_connected(slack, daemon, state)
            _Session(slack, out, {person.user_id: person.name for person in (ALICE, BOB)}).play()
        except (StandinError, TimeoutError) as error:
            raise DemoFailed(f"the demo stopped: {error}\n{_log_tail(state)}") from None
        finally:
            _stop(daemon)
    print(
        f"\nThat was the real `gpubot serve`, {time.monotonic() - started:.0f} s of it, against a pretend Slack"
        ' and pretend GPUs.\nTo run it for real: README.md, "Install on a GPU host".',
        file=out,
    )
    return 0


class _Session:
    """The script, and how each step is shown."""

    def __init__(self, slack: SlackStandin, out: TextIO, names: Mapping[str, str]) -> None:
        self._slack = slack
        self._out = out
        self._names = names

    def play(self) -> None:
        self._intro()
        self.slash(ALICE, "")
        self.home(BOB)
        self.slash(ALICE, "claim 0 fine-tune llama 3h")
        self.slash(BOB, "claim 0 quick eval")
        self.slash(ALICE, "release 0")
        self.slash(BOB, f"claim 0 quick eval {SHORT_CLAIM}")
        self._say(
            f"bob's claim lasts {SHORT_CLAIM}; gpubot warns {CLAIM_BOUNDS['GPUBOT_WARN_BEFORE']} before the end."
            " Waiting…"
        )
        self.dm(BOB, 1)
        self.dm(BOB, 2)
        self.slash(ALICE, "")

    def slash(self, person: Person, text: str) -> None:
        """`person` types `/gpu <text>`; print the reply only they see."""
        command = f"/gpu {text}".strip()
        ack = self._slack.command(text, user_id=person.user_id, timeout=10.0)
        reply = ack.payload or {}
        self._title(f"{person.name} types {command}", f"· only {person.name} sees the reply")
        self._show(reply.get("blocks"), reply.get("text"))

    def home(self, person: Person) -> None:
        """`person` opens gpubot's Home tab; print the view the bot publishes for them."""
        published = len(self._published_to(person))
        self._slack.open_home(person.user_id, timeout=10.0)
        call = self._slack.wait_for_calls(
            "views.publish", published + 1, lambda c: c.params.get("user_id") == person.user_id, timeout=10.0
        )[-1]
        self._title(f"{person.name} opens gpubot's Home tab", f"· {person.name}'s own view")
        self._show(call.params["view"].get("blocks"), None)

    def dm(self, person: Person, nth: int) -> None:
        """Wait for the `nth` DM to `person` and print it."""
        channel = payloads.dm_channel_id(person.user_id)
        try:
            call = self._slack.wait_for_calls(
                "chat.postMessage",
                nth,
                lambda c: c.params.get("channel") == channel and c.http_status == 200,
                timeout=_DM_TIMEOUT_S,
            )[-1]
        except TimeoutError:
            raise DemoFailed(
                f"{person.name}'s DM number {nth} (the expiry {'warning' if nth == 1 else 'notice'}) did not arrive"
                f" within {_DM_TIMEOUT_S:.0f} s"
            ) from None
        self._title(f"{person.name} gets a DM from gpubot", "")
        self._show(call.params.get("blocks"), call.params.get("text"))

    def _published_to(self, person: Person) -> list[object]:
        return [c for c in self._slack.calls("views.publish") if c.params.get("user_id") == person.user_id]

    def _intro(self) -> None:
        gpus = len(DEMO_GPUS["gpus"])
        print(
            f"gpubot demo: the real bot on a pretend Slack workspace and {gpus} pretend GPUs on"
            f" {DEMO_GPUS['hostname']}.\nTwo people, alice and bob, share them. Nothing here touches a real"
            " Slack or GPU.",
            file=self._out,
        )

    def _say(self, text: str) -> None:
        print(f"\n{text}", file=self._out, flush=True)

    def _title(self, what: str, note: str) -> None:
        heading = f"── {what}  {note}".rstrip() + " "
        print(f"\n{heading}{'─' * max(_WIDTH - len(heading), 3)}", file=self._out)

    def _show(self, blocks: Sequence[Any] | None, fallback: str | None) -> None:
        has_blocks = isinstance(blocks, list) and bool(blocks)
        text = render_blocks(blocks or [], self._names) if has_blocks else fallback or "(no reply)"
        for line in text.splitlines():
            print(f"  {line}", file=self._out)
        self._out.flush()


def _start_daemon(slack: SlackStandin, state: Path, environ: Mapping[str, str]) -> subprocess.Popen[bytes]:
    gpus = state / "gpus.json"
    gpus.write_text(json.dumps(DEMO_GPUS))
    # Only the demo's settings: none of the caller's gpubot or Slack settings, nor systemd's.
    inherited = {
        key: value
        for key, value in environ.items()
        if not key.startswith(("GPUBOT_", "SLACK_", "NOTIFY_SOCKET", "WATCHDOG_", "CREDENTIALS_DIRECTORY"))
    }
    env = {
        **inherited,
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_APP_TOKEN": slack.app_token,
        "GPUBOT_SLACK_API_URL": slack.api_url,
        "GPUBOT_DATABASE_URL": f"sqlite:///{state / 'gpubot.db'}",
        "GPUBOT_GPU_BACKEND": "fake",
        "GPUBOT_FAKE_GPUS": str(gpus),
        "GPUBOT_TELEMETRY_INTERVAL": "1s",
        "GPUBOT_LOG_LEVEL": "WARNING",
        **CLAIM_BOUNDS,
    }
    with (state / "serve.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gpubot", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )


def _wait_connected(slack: SlackStandin, daemon: subprocess.Popen[bytes], state: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise DemoFailed(f"gpubot serve exited with {daemon.returncode} before connecting\n{_log_tail(state)}")
        try:
            slack.wait_connected(timeout=0.5)
            return
        except TimeoutError:
            continue
    raise DemoFailed(f"gpubot serve did not connect within {_START_TIMEOUT_S:.0f} s\n{_log_tail(state)}")


def _stop(daemon: subprocess.Popen[bytes]) -> None:
    if daemon.poll() is not None:
        return
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()


def _log_tail(state: Path, lines: int = 20) -> str:
    log = state / "serve.log"
    if not log.exists():
        return ""
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return "gpubot serve's log ended with:\n" + "\n".join(tail) if tail else ""
