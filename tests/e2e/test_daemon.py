"""`gpubot serve` as a process: start, stop on a signal, restart with state intact, refuse bad settings."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from gpubot.standin import SlackStandin

from .conftest import daemon_env, reply_text, start_daemon, stop_or_kill


@pytest.fixture
def slack():
    with SlackStandin() as standin:
        yield standin


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_it_cleanly_within_ten_seconds(slack, tmp_path, signum):
    daemon = start_daemon(slack, tmp_path)
    assert "4 of 4 GPUs free" in reply_text(slack.command("status"))
    daemon.process.send_signal(signum)
    assert stop_or_kill(daemon.process, 10, daemon.log) == 0, daemon.log()


def test_claims_survive_a_restart(slack, tmp_path):
    first = start_daemon(slack, tmp_path)
    slack.command("claim 1 survives restarts 4h", user_id="U0ALICE")
    code, took_s = first.stop()
    assert code == 0 and took_s < 10
    second = start_daemon(slack, tmp_path)
    try:
        status = reply_text(slack.command("status", user_id="U0BOB"))
        assert "<@U0ALICE>" in status and "survives restarts" in status and "3 of 4 GPUs free" in status
    finally:
        assert second.stop()[0] == 0


def test_two_daemons_starting_at_once_on_an_empty_database_both_come_up(slack, tmp_path):
    # Two hosts of one fleet: two processes for one host name would be refused (tests/e2e/test_agent.py).
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "gpubot", "serve"],
            env=daemon_env(slack, tmp_path, GPUBOT_HOST_NAME=name),
            stderr=subprocess.DEVNULL,
        )
        for name in ("gpu-box-1", "gpu-box-2")
    ]
    try:
        # Both must be up (each connected once) before the signal, or one may still be importing,
        # before its handler is installed.
        deadline = time.monotonic() + 30
        while slack.wait_connected(timeout=30) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slack.wait_connected() >= 2
        # Each answers for the fleet, the other host included once its first report has been read.
        deadline = time.monotonic() + 15
        status = reply_text(slack.command("status"))
        while "8 of 8 GPUs free on 2 hosts" not in status and time.monotonic() < deadline:
            time.sleep(0.2)
            status = reply_text(slack.command("status"))
        assert "8 of 8 GPUs free on 2 hosts" in status
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            assert stop_or_kill(process, 15) == 0


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"SLACK_BOT_TOKEN": ""}, "SLACK_BOT_TOKEN"),
        ({"SLACK_APP_TOKEN": "xoxb-not-an-app-token"}, "SLACK_APP_TOKEN"),
        ({"GPUBOT_MAX_DURATION": "forever"}, "GPUBOT_MAX_DURATION"),
        ({"GPUBOT_GPU_BACKEND": "quantum"}, "GPUBOT_GPU_BACKEND"),
        ({"SLACK_BOT_TOKEN": "xoxb-revoked"}, "SLACK_BOT_TOKEN"),  # Slack says invalid_auth
        ({"SLACK_APP_TOKEN": "xapp-revoked"}, "SLACK_APP_TOKEN"),  # apps.connections.open says invalid_auth
        ({"GPUBOT_GPU_BACKEND": "nvidia-smi", "GPUBOT_NVIDIA_SMI": "/nonexistent/nvidia-smi"}, "GPUBOT_NVIDIA_SMI"),
    ],
)
def test_a_bad_setting_gives_one_line_naming_it_and_exit_78(slack, tmp_path, overrides, variable):
    env = daemon_env(slack, tmp_path, **overrides)
    result = subprocess.run(
        [sys.executable, "-m", "gpubot", "serve"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], result.stderr
    assert "xoxb-not-an-app-token" not in result.stderr


def test_tokens_never_reach_the_log_even_at_debug(slack, tmp_path):
    daemon = start_daemon(slack, tmp_path, GPUBOT_LOG_LEVEL="DEBUG")
    slack.command("claim 0 debug run", user_id="U0ALICE")
    slack.command("release 0", user_id="U0ALICE")
    assert daemon.stop()[0] == 0
    log = daemon.log()
    assert "DEBUG" in log and "apps.connections.open" in log  # slack_sdk really logged its requests
    assert slack.bot_token not in log and slack.app_token not in log
    assert "xoxb-" not in log and "xapp-" not in log


def test_telemetry_backend_that_cannot_load_is_a_clear_error(slack, tmp_path):
    env = daemon_env(slack, tmp_path, GPUBOT_GPU_BACKEND="nvidia-smi", GPUBOT_NVIDIA_SMI=str(tmp_path / "missing"))
    result = subprocess.run(
        [sys.executable, "-m", "gpubot", "serve"], env=env, capture_output=True, text=True, timeout=30
    )
    # 78, not 1: restarting cannot make a GPU backend appear, so systemd must not retry forever.
    assert result.returncode == 78
    assert "GPUBOT_NVIDIA_SMI" in result.stderr and "Traceback" not in result.stderr


def test_a_rejected_app_token_stops_it_at_start_without_a_connect_loop(slack, tmp_path):
    env = daemon_env(slack, tmp_path, SLACK_APP_TOKEN="xapp-revoked")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "gpubot", "serve"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 78 and time.monotonic() - started < 10
    assert "Traceback" not in result.stderr and "SLACK_APP_TOKEN" in result.stderr
    assert "invalid_auth" in result.stderr
    assert len(slack.calls("apps.connections.open")) == 1  # asked once, not every 10 s


def test_an_app_token_revoked_while_running_stops_it_with_78_and_no_traceback(slack, tmp_path):
    daemon = start_daemon(slack, tmp_path)
    slack.fail_next("apps.connections.open", "invalid_auth", times=50)
    slack.disconnect()  # slack_sdk reconnects, and Slack refuses the token it asks with
    code = stop_or_kill(daemon.process, 20, daemon.log)
    log = daemon.log()
    assert code == 78, log
    # No traceback (from the Socket Mode client, or a job the stop cut short) and no retry: it stopped at the
    # first refusal.
    assert "Traceback" not in log and "Retrying" not in log, log
    assert log.strip().splitlines()[-1].startswith("gpubot: SLACK_APP_TOKEN"), log
    assert len(slack.calls("apps.connections.open")) <= 3, log


def test_a_signal_while_slack_sdk_retries_its_connect_stops_it_within_ten_seconds(slack, tmp_path):
    env = daemon_env(slack, tmp_path)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "gpubot", "serve"], env=env, stdout=out, stderr=out)
    try:
        slack.wait_for_call("apps.connections.open", timeout=20)  # the start-up check of the app token
        # From here every connect fails (HTTP 503): slack_sdk retries it every 10 s, at start or on reconnect.
        slack.start_outage()
        slack.drop_connections()
        deadline = time.monotonic() + 20
        while not any(s in log.read_text() for s in ("Failed to connect", "Failed to check the current session")):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
    assert stop_or_kill(process, 10, log.read_text) == 0, log.read_text()


def test_a_database_it_cannot_write_is_one_line_naming_the_file_and_exit_78(slack, tmp_path):
    database = tmp_path / "gpubot.db"
    subprocess.run(
        [sys.executable, "-m", "gpubot", "db", "upgrade"],
        env=daemon_env(slack, tmp_path),
        check=True,
        capture_output=True,
    )
    # SQLite's read-only mode refuses writes even to root, whom file modes do not stop.
    env = daemon_env(slack, tmp_path, GPUBOT_DATABASE_URL=f"sqlite:///file:{database}?mode=ro&uri=true")
    result = subprocess.run(
        [sys.executable, "-m", "gpubot", "serve"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 78, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(database) in lines[0] and "readonly database" in lines[0], result.stderr
