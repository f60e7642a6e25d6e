"""`gpubot serve` under a (pretend) systemd: a real datagram socket as $NOTIFY_SOCKET."""

from __future__ import annotations

import time

import pytest

from gpubot.standin import SlackStandin

from .conftest import reply_text, start_daemon


@pytest.fixture
def slack():
    with SlackStandin() as standin:
        yield standin


def test_ready_after_connecting_status_with_claims_watchdog_and_stopping(slack, tmp_path, notify_socket):
    daemon = start_daemon(slack, tmp_path, NOTIFY_SOCKET=notify_socket.name, WATCHDOG_USEC="1000000")
    try:
        ready_at, ready = notify_socket.wait_for(lambda m: "READY=1" in m)
        assert ready == "READY=1\nSTATUS=connected, 0 of 4 GPUs claimed"
        # Ready only once Socket Mode is connected: after the stand-in handed out the WebSocket URL.
        opened = slack.calls("apps.connections.open")
        assert opened and ready_at > opened[0].received_at

        # WatchdogSec=1s: a ping every half second while healthy.
        notify_socket.wait_for(lambda m: m == "WATCHDOG=1", timeout=3)

        slack.command("claim 1 notify test 4h", user_id="U0ALICE")
        notify_socket.wait_for(lambda m: m == "STATUS=connected, 1 of 4 GPUs claimed", timeout=5)
    finally:
        code, took_s = daemon.stop()
    assert code == 0 and took_s < 10, daemon.log()
    notify_socket.wait_for(lambda m: m.startswith("STOPPING=1"), timeout=1)
    assert [m for _, m in notify_socket.received].count("READY=1\nSTATUS=connected, 0 of 4 GPUs claimed") == 1


def test_without_a_watchdog_there_are_no_pings(slack, tmp_path, notify_socket):
    daemon = start_daemon(slack, tmp_path, NOTIFY_SOCKET=notify_socket.name)
    try:
        notify_socket.wait_for(lambda m: "READY=1" in m)
    finally:
        assert daemon.stop()[0] == 0
    notify_socket.wait_for(lambda m: m.startswith("STOPPING=1"), timeout=1)
    assert "WATCHDOG=1" not in [m for _, m in notify_socket.received]


def test_a_database_file_deleted_under_it_is_refused_said_and_stops_the_pings(slack, tmp_path, notify_socket):
    daemon = start_daemon(slack, tmp_path, NOTIFY_SOCKET=notify_socket.name, WATCHDOG_USEC="2000000")
    try:
        assert "GPU 0" in reply_text(slack.command("claim 0 before the deletion", user_id="U0ALICE"))
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"gpubot.db{suffix}").unlink(missing_ok=True)
        reply = reply_text(slack.command("claim 1 after the deletion", user_id="U0ALICE"))
        assert "database file was deleted" in reply and "nothing was changed" in reply, reply
        assert "Something went wrong" not in reply
        notify_socket.wait_for(lambda m: "was deleted; restart gpubot" in m, timeout=10)
        pings_then = [m for _, m in notify_socket.received].count("WATCHDOG=1")
        time.sleep(3)  # a ping would be due every second
        assert [m for _, m in notify_socket.received].count("WATCHDOG=1") == pings_then
    finally:
        daemon.stop()
    assert f"the database file {tmp_path / 'gpubot.db'} was deleted; restart gpubot" in daemon.log()
