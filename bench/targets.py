"""The apps under test, each started as a process of its own against its own loopback Slack.

Four kinds: the three bare Bolt floors (`floor_default.py`, `floor_tuned.py`, `floor_durable.py`) and
the real `gpubot serve` on the `fake` GPU backend with a SQLite file. All are started, watched and stopped
the same way, so they are measured alike.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from loopback import LoopbackSlack

BENCH_DIR = Path(__file__).resolve().parent
FLOOR_DEFAULT = "floor-default"
FLOOR_TUNED = "floor-tuned"
FLOOR_DURABLE = "floor-durable"
FLOORS = (FLOOR_DEFAULT, FLOOR_TUNED, FLOOR_DURABLE)
GPUBOT = "gpubot"

# gpubot logs this once its Socket Mode connection is up and its first health check passed: the moment
# it tells systemd READY=1 (daemon/watchdog.py). The floors print "ready" once `connect()` returned.
_READY_MARKERS = {FLOOR_DEFAULT: "ready", FLOOR_TUNED: "ready", FLOOR_DURABLE: "ready", GPUBOT: "ready: "}
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 15.0
_LOG_LINES_KEPT = 200
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class TargetSpec:
    """How to start one app under test."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]

    @property
    def ready_marker(self) -> str:
        """The stderr text that says the app is ready."""
        return _READY_MARKERS[self.kind]

    @property
    def kind(self) -> str:
        """A floor's name or `gpubot` (a spec's name may add a suffix)."""
        return next(kind for kind in (*FLOORS, GPUBOT) if self.name.startswith(kind))


def clean_environment() -> dict[str, str]:
    """This process's environment without anything that would configure an app under test."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GPUBOT_", "SLACK_", "NOTIFY_SOCKET", "WATCHDOG_"))
    }


def floor_spec(kind: str, slack: LoopbackSlack, state_dir: Path) -> TargetSpec:
    """A floor app (one of `FLOORS`) wired to `slack`; the durable floor keeps its database in `state_dir`."""
    script = BENCH_DIR / f"{kind.replace('-', '_')}.py"
    env = {**clean_environment(), **slack.app_env()}
    if kind == FLOOR_DURABLE:
        env["FLOOR_DATABASE"] = str(state_dir / "floor.db")
    return TargetSpec(kind, (sys.executable, str(script)), env)


def gpubot_spec(
    slack: LoopbackSlack, state_dir: Path, fake_gpus: Path, name: str = GPUBOT, **settings: str
) -> TargetSpec:
    """`gpubot serve` wired to `slack`, the fake GPUs in `fake_gpus` and a SQLite file in `state_dir`.

    Args:
        slack: the loopback Slack it talks to.
        state_dir: where its database lives.
        fake_gpus: the fake backend's JSON file.
        name: the name figures are reported under.
        settings: more GPUBOT_* variables, e.g. GPUBOT_MIN_DURATION="1s".
    """
    env = {
        **clean_environment(),
        **slack.app_env(),
        "GPUBOT_DATABASE_URL": f"sqlite:///{state_dir / 'gpubot.db'}",
        "GPUBOT_GPU_BACKEND": "fake",
        "GPUBOT_FAKE_GPUS": str(fake_gpus),
        "GPUBOT_TIMEZONE": "UTC",
        "GPUBOT_LOG_LEVEL": "INFO",
        **settings,
    }
    return TargetSpec(name, (sys.executable, "-m", "gpubot", "serve"), env)


@dataclass
class RunningTarget:
    """A started app: its process, when it started and became ready, and the tail of its log."""

    spec: TargetSpec
    slack: LoopbackSlack
    process: asyncio.subprocess.Process
    started_at: float
    connected_at: float | None = None
    ready_at: float | None = None
    log_tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=_LOG_LINES_KEPT))
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _drain: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    @property
    def ready_s(self) -> float:
        """Seconds from starting the process to its ready line."""
        if self.ready_at is None:
            raise RuntimeError(f"{self.spec.name} is not ready")
        return self.ready_at - self.started_at

    @property
    def connected_s(self) -> float:
        """Seconds from starting the process to the stand-in seeing its Socket Mode connection."""
        if self.connected_at is None:
            raise RuntimeError(f"{self.spec.name} is not connected")
        return self.connected_at - self.started_at

    def rss_mib(self) -> float:
        """Resident memory now (VmRSS from /proc/<pid>/status), in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for pid {self.pid}")

    def cpu_s(self) -> float:
        """User plus system CPU seconds the process has used (from /proc/<pid>/stat)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def log(self) -> str:
        """The last lines the app wrote to stderr."""
        return "\n".join(self.log_tail)

    async def _read_log(self) -> None:
        stream = self.process.stderr
        if stream is None:
            return
        marker = self.spec.ready_marker
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            if self.ready_at is None and marker in text:
                self.ready_at = time.perf_counter()
                self._ready.set()
            self.log_tail.append(text)

    async def stop(self) -> int:
        """SIGTERM, wait for the exit (SIGKILL after 15 s); returns the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), _STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._drain is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
        return self.process.returncode if self.process.returncode is not None else -1


async def start_target(spec: TargetSpec, slack: LoopbackSlack) -> RunningTarget:
    """Start the app and wait until it is both connected (as the stand-in sees it) and ready (its log line).

    Raises:
        RuntimeError: it exited, or was not ready within 60 s; the message carries its log.
    """
    started_at = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *spec.argv,
        env=dict(spec.env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    target = RunningTarget(spec, slack, process, started_at)
    target._drain = asyncio.create_task(target._read_log())

    async def connected() -> None:
        await slack.wait_connected(_START_TIMEOUT_S)
        target.connected_at = time.perf_counter()

    waits = [asyncio.create_task(connected()), asyncio.create_task(target._ready.wait())]
    exited: asyncio.Future[object] = asyncio.ensure_future(process.wait())
    both: asyncio.Future[object] = asyncio.ensure_future(asyncio.gather(*waits))
    done, _ = await asyncio.wait([exited, both], timeout=_START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    if exited in done or target.ready_at is None or target.connected_at is None:
        for task in waits:
            task.cancel()
        await target.stop()
        raise RuntimeError(f"{spec.name} did not become ready (exit code {process.returncode}):\n{target.log()}")
    exited.cancel()
    return target
