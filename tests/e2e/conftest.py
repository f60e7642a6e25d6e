"""End-to-end fixtures: the real `gpubot serve` in a subprocess, talking to the Slack stand-in."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gpubot.standin import SlackStandin

ADMIN = "U0ADMIN"

FAKE_GPUS = {
    "hostname": "gpu-box-1",
    "driver_version": "550.54.15",
    "gpus": [
        {
            "index": 0,
            "name": "NVIDIA H100 80GB HBM3",
            "uuid": "GPU-0000",
            "memory_total_mib": 81559,
            "memory_used_mib": 8300,
            "utilization_gpu_pct": 85,
            "temperature_c": 72,
            "power_draw_w": 450.0,
            "power_limit_w": 700.0,
            "processes": [{"pid": 4242, "name": "python", "used_memory_mib": 8192, "user": "alice"}],
        },
        {
            "index": 1,
            "name": "NVIDIA H100 80GB HBM3",
            "uuid": "GPU-0001",
            "memory_total_mib": 81559,
            "memory_used_mib": 0,
            "utilization_gpu_pct": 0,
            "temperature_c": 31,
            "power_draw_w": 70.0,
            "power_limit_w": 700.0,
            "processes": [],
        },
        {"index": 2, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-0002", "memory_total_mib": 81559},
        {"index": 3, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-0003", "lost": True},
    ],
}


@dataclass
class Daemon:
    """A running `gpubot serve` and where its log goes."""

    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM, then the exit code and how long the exit took; a daemon that hangs is killed."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        return stop_or_kill(self.process, timeout, self.log), time.monotonic() - started


def stop_or_kill(process: subprocess.Popen[bytes], timeout: float, log: Callable[[], str] = str) -> int:
    """Wait for a signalled daemon to exit; if it does not in time, kill it and fail, never leave it running."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"gpubot serve did not exit within {timeout} s of SIGTERM:\n{log()}") from None


def daemon_env(slack: SlackStandin, state: Path, **overrides: str) -> dict[str, str]:
    """The environment of a daemon wired to the stand-in, the fake GPUs and a SQLite file under `state`."""
    base = {key: value for key, value in os.environ.items() if not key.startswith(("GPUBOT_", "SLACK_"))}
    fake = state / "gpus.json"
    if not fake.exists():
        fake.write_text(json.dumps(FAKE_GPUS))
    return {
        **base,
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_APP_TOKEN": slack.app_token,
        "GPUBOT_SLACK_API_URL": slack.api_url,
        "GPUBOT_DATABASE_URL": f"sqlite:///{state / 'gpubot.db'}",
        "GPUBOT_GPU_BACKEND": "fake",
        "GPUBOT_FAKE_GPUS": str(fake),
        "GPUBOT_ADMINS": ADMIN,
        "GPUBOT_TIMEZONE": "Europe/Berlin",
        "GPUBOT_TELEMETRY_INTERVAL": "1s",
        **overrides,
    }


def start_daemon(slack: SlackStandin, state: Path, **overrides: str) -> Daemon:
    """Start `gpubot serve` and wait until its Socket Mode connection is up."""
    env = daemon_env(slack, state, **overrides)
    log_path = state / f"serve-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gpubot", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    daemon = Daemon(process, log_path, env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gpubot serve exited with {process.returncode}:\n{daemon.log()}")
        try:
            slack.wait_connected(timeout=0.5)
            return daemon
        except TimeoutError:
            continue
    process.kill()
    raise AssertionError(f"gpubot serve never connected:\n{daemon.log()}")


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackStandin]:
    with SlackStandin() as standin:
        yield standin


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gpubot-state")


@pytest.fixture(scope="module")
def daemon(slack: SlackStandin, state: Path) -> Iterator[Daemon]:
    running = start_daemon(slack, state)
    yield running
    if running.process.poll() is None:
        code, _ = running.stop()
        assert code == 0, running.log()


def reply_text(ack) -> str:
    """Everything a person would read in an ack's reply, as one string."""
    assert ack.payload is not None, "the app acked without a reply"
    return json.dumps(ack.payload, ensure_ascii=False)


@dataclass
class NotifySocket:
    """The receiving end of sd_notify: every datagram, with when it arrived (time.perf_counter)."""

    name: str
    receiver: socket.socket
    received: list[tuple[float, str]] = field(default_factory=list)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 10.0) -> tuple[float, str]:
        """The first datagram (already received or arriving within `timeout`) matching `predicate`."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for arrived_at, message in self.received[seen:]:
                if predicate(message):
                    return arrived_at, message
            seen = len(self.received)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching datagram in {timeout} s; got {[m for _, m in self.received]}")
            self.receiver.settimeout(remaining)
            try:
                data = self.receiver.recv(4096)
            except TimeoutError:
                continue
            self.received.append((time.perf_counter(), data.decode()))


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    # Abstract, as systemd's own is: no path-length limit, nothing to clean up.
    name = f"gpubot-test-{uuid.uuid4()}"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(b"\0" + name.encode())
    yield NotifySocket("@" + name, receiver)
    receiver.close()
