"""`gpubot agent` as a process: it reports to a database others read, one per host name, and stops cleanly.

Each runs on SQLite (a file) and on PostgreSQL (a database of this run's own), with the fake GPU backend and no
Slack tokens at all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gpubot.core.models import HostReport
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from tests.postgres import scratch_database

from .conftest import FAKE_GPUS, daemon_env, start_daemon, stop_or_kill

HOST = FAKE_GPUS["hostname"]
# Short, so that a refusal comes within seconds: the time-out must be at least two intervals.
FAST = {"GPUBOT_TELEMETRY_INTERVAL": "1s", "GPUBOT_HOST_TIMEOUT": "3s"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gpubot.db'}"
        return
    with scratch_database() as url:
        yield url


@dataclass
class Agent:
    """A running `gpubot agent` and where its output goes."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        return stop_or_kill(self.process, 10, self.log)


def agent_env(tmp_path: Path, database_url: str, **overrides: str) -> dict[str, str]:
    """An agent's environment: the fake GPUs, the database, and no Slack token anywhere."""
    base = {key: value for key, value in os.environ.items() if not key.startswith(("GPUBOT_", "SLACK_"))}
    fake = tmp_path / "gpus.json"
    if not fake.exists():
        fake.write_text(json.dumps(FAKE_GPUS))
    return {
        **base,
        "GPUBOT_DATABASE_URL": database_url,
        "GPUBOT_GPU_BACKEND": "fake",
        "GPUBOT_FAKE_GPUS": str(fake),
        **FAST,
        **overrides,
    }


def start_agent(tmp_path: Path, database_url: str, **overrides: str) -> Agent:
    log_path = tmp_path / f"agent-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gpubot", "agent"],
            env=agent_env(tmp_path, database_url, **overrides),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Agent(process, log_path)


@pytest.fixture
def reader(database_url: str) -> Iterator[Engine]:
    """Another process's view of the database (an engine of this test's own)."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def wait_for_host(engine: Engine, agent: Agent, ok: Callable[[HostReport], bool], timeout: float = 20) -> HostReport:
    """The agent's host once `ok` holds for it (the tables may not exist yet at first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert agent.process.poll() is None, agent.log()
        try:
            for host in SqlClaimStore(engine).hosts():
                if host.name == HOST and ok(host):
                    return host
        except Exception:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the host never got there:\n{agent.log()}")


def test_an_agent_writes_samples_that_another_process_reads(tmp_path, database_url, reader):
    agent = start_agent(tmp_path, database_url)
    try:
        host = wait_for_host(reader, agent, lambda host: host.sample is not None)
        assert host.role.value == "agent" and host.holder is not None and host.holder.pid == agent.process.pid
        assert [gpu.uuid for gpu in host.sample.gpus] == ["GPU-0000", "GPU-0001", "GPU-0002", "GPU-0003"]
        assert host.sample.gpus[0].processes[0].user == "alice" and host.sample.gpus[3].lost
        # The GPUs are in the claims' inventory too, so that a serve instance can let people claim them.
        assert [gpu.label for gpu in SqlClaimStore(reader).list_gpus(HOST)] == ["0", "1", "2", "3"]
        # A change on the host reaches the database within an interval or two.
        changed = json.loads(json.dumps(FAKE_GPUS))
        changed["gpus"][1]["utilization_gpu_pct"] = 99
        (tmp_path / "gpus.json").write_text(json.dumps(changed))
        wait_for_host(reader, agent, lambda host: host.sample.gpus[1].utilization_gpu_pct == 99, timeout=10)
    finally:
        assert agent.stop() == 0, agent.log()
    log = agent.log()
    assert f"reporting 4 GPUs of {HOST} to DB as agent" in log and "Traceback" not in log, log


def test_a_second_process_for_the_same_host_name_is_refused_with_78_and_one_clear_line(tmp_path, database_url, reader):
    first = start_agent(tmp_path, database_url)
    try:
        wait_for_host(reader, first, lambda host: host.sample is not None)
        started = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "gpubot", "agent"],
            env=agent_env(tmp_path, database_url),
            capture_output=True,
            text=True,
            timeout=30,
        )
        took_s = time.monotonic() - started
        assert second.returncode == 78, second.stderr
        # It waited out the time-out for the holder to go silent, saying so once, then gave up.
        assert 3 <= took_s < 15, took_s
        lines = second.stderr.strip().splitlines()
        assert len([line for line in lines if "waiting up to 3s" in line]) == 1, second.stderr
        assert lines[-1].startswith(f"gpubot: The host name '{HOST}' is in use by another live gpubot"), lines
        assert f"pid {first.process.pid} on machine" in lines[-1] and "GPUBOT_HOST_NAME" in lines[-1]
        assert "Traceback" not in second.stderr
        # The first one never noticed: it still holds the name and reports.
        reported = wait_for_host(reader, first, lambda host: True).last_report_at
        wait_for_host(reader, first, lambda host: host.last_report_at > reported, timeout=5)
        assert first.process.poll() is None
    finally:
        assert first.stop() == 0, first.log()


def test_sigterm_releases_the_name_and_a_successor_starts_at_once(tmp_path, database_url, reader):
    # A time-out far longer than the test: the successor must not be waiting it out.
    slow = {"GPUBOT_HOST_TIMEOUT": "5m"}
    first = start_agent(tmp_path, database_url, **slow)
    wait_for_host(reader, first, lambda host: host.sample is not None)
    assert first.stop() == 0, first.log()
    [host] = SqlClaimStore(reader).hosts()
    assert host.holder is None and host.sample is not None  # released; its last report stays
    second = start_agent(tmp_path, database_url, **slow)
    try:
        host = wait_for_host(reader, second, lambda host: host.holder is not None, timeout=10)
        assert host.holder.pid == second.process.pid
        assert "waiting" not in second.log()
    finally:
        assert second.stop() == 0, second.log()


def test_after_a_crash_a_restart_on_the_same_machine_takes_the_name_at_once(tmp_path, database_url, reader):
    slow = {"GPUBOT_HOST_TIMEOUT": "5m"}
    crashed = start_agent(tmp_path, database_url, **slow)
    wait_for_host(reader, crashed, lambda host: host.sample is not None)
    crashed.process.send_signal(signal.SIGKILL)
    crashed.process.wait(timeout=10)
    restarted = start_agent(tmp_path, database_url, **slow)
    try:
        host = wait_for_host(reader, restarted, lambda host: host.holder.pid == restarted.process.pid, timeout=10)
        assert host.holder is not None and "waiting" not in restarted.log()
    finally:
        assert restarted.stop() == 0, restarted.log()


def test_ready_after_the_first_report_then_a_ping_per_report(tmp_path, notify_socket):
    database_url = f"sqlite:///{tmp_path / 'gpubot.db'}"
    agent = start_agent(tmp_path, database_url, NOTIFY_SOCKET=notify_socket.name, WATCHDOG_USEC="10000000")
    try:
        _, ready = notify_socket.wait_for(lambda m: "READY=1" in m, timeout=20)
        assert ready == f"READY=1\nSTATUS=reporting 4 GPUs of {HOST} to the database as agent"
        notify_socket.wait_for(lambda m: m == "WATCHDOG=1", timeout=5)
    finally:
        assert agent.stop() == 0, agent.log()
    notify_socket.wait_for(lambda m: m.startswith("STOPPING=1"), timeout=1)


def test_an_agent_without_gpus_is_a_configuration_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gpubot", "agent"],
        env=agent_env(tmp_path, f"sqlite:///{tmp_path / 'gpubot.db'}", GPUBOT_GPU_BACKEND="none"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "GPUBOT_GPU_BACKEND" in lines[0], result.stderr


def test_serve_is_refused_a_host_name_an_agent_reports_for(tmp_path, reader, database_url):
    from gpubot.standin import SlackStandin

    agent = start_agent(tmp_path, database_url)
    try:
        wait_for_host(reader, agent, lambda host: host.sample is not None)
        with SlackStandin() as slack:
            env = daemon_env(slack, tmp_path, GPUBOT_DATABASE_URL=database_url, **FAST)
            result = subprocess.run(
                [sys.executable, "-m", "gpubot", "serve"], env=env, capture_output=True, text=True, timeout=30
            )
            assert result.returncode == 78, result.stderr
            assert "is in use by another live gpubot" in result.stderr.strip().splitlines()[-1]
            with pytest.raises(Exception, match="connect"):  # refused before it connected to Slack
                slack.wait_connected(timeout=0.1)
    finally:
        assert agent.stop() == 0, agent.log()


def test_a_serve_instance_without_gpus_registers_no_host(tmp_path, reader, database_url):
    from gpubot.standin import SlackStandin

    with SlackStandin() as slack:
        daemon = start_daemon(slack, tmp_path, GPUBOT_DATABASE_URL=database_url, GPUBOT_GPU_BACKEND="none")
        try:
            assert SqlClaimStore(reader).hosts() == []
        finally:
            assert daemon.stop()[0] == 0, daemon.log()


def test_a_process_whose_name_was_taken_while_it_was_silent_stops_with_78_naming_the_taker(
    tmp_path, database_url, reader
):
    first = start_agent(tmp_path, database_url)
    wait_for_host(reader, first, lambda host: host.sample is not None)
    first.process.send_signal(signal.SIGSTOP)  # silent, as a host whose database was away
    second = start_agent(tmp_path, database_url)
    try:
        # It waits out the silence (its PID is alive: stopped, not gone), then takes the name.
        host = wait_for_host(reader, second, lambda host: host.holder.pid == second.process.pid, timeout=15)
        assert host.holder is not None
        first.process.send_signal(signal.SIGCONT)
        assert stop_or_kill(first.process, 10, first.log) == 78
        log = first.log().strip().splitlines()
        assert f"pid {second.process.pid} on machine" in log[-1] and "in use by another live gpubot" in log[-1], log
        assert any("is no longer this process's" in line for line in log) and "Traceback" not in first.log()
        assert second.process.poll() is None  # the taker carries on
    finally:
        first.process.send_signal(signal.SIGCONT)
        assert second.stop() == 0, second.log()


def test_a_serve_instance_whose_name_was_taken_stops_with_78_too(tmp_path, reader, database_url):
    from gpubot.standin import SlackStandin

    with SlackStandin() as slack:
        daemon = start_daemon(slack, tmp_path, GPUBOT_DATABASE_URL=database_url, **FAST)
        try:
            wait_for_host(reader, daemon, lambda host: host.role.value == "serve")
            daemon.process.send_signal(signal.SIGSTOP)
            taker = start_agent(tmp_path, database_url)
            try:
                wait_for_host(reader, taker, lambda host: host.holder.pid == taker.process.pid, timeout=15)
                daemon.process.send_signal(signal.SIGCONT)
                assert stop_or_kill(daemon.process, 15, daemon.log) == 78
                last = daemon.log().strip().splitlines()[-1]
                assert last.startswith("gpubot: The host name") and f"pid {taker.process.pid} on machine" in last
                assert "Traceback" not in daemon.log(), daemon.log()
            finally:
                assert taker.stop() == 0, taker.log()
        finally:
            daemon.process.send_signal(signal.SIGCONT)
            if daemon.process.poll() is None:
                daemon.stop()
