"""sd_notify datagrams reach a real Unix datagram socket, by path or abstract name."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpubot.daemon.sd_notify import SystemdNotifier


@pytest.fixture
def path_socket() -> Iterator[tuple[str, socket.socket]]:
    # A short directory: a Unix socket path must fit in 108 bytes, and pytest's tmp_path may not.
    directory = tempfile.mkdtemp(prefix="gpubot-")
    path = os.path.join(directory, "notify")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    receiver.settimeout(2)
    yield path, receiver
    receiver.close()
    Path(path).unlink()
    os.rmdir(directory)


def test_each_message_is_one_datagram_of_assignments(path_socket):
    path, receiver = path_socket
    notifier = SystemdNotifier(path)

    assert notifier.enabled
    assert notifier.ready("connected, 0 of 4 GPUs claimed")
    assert notifier.watchdog()
    assert notifier.status("two\nlines")
    assert notifier.stopping()
    notifier.close()

    received = [receiver.recv(4096).decode() for _ in range(4)]
    assert received == [
        "READY=1\nSTATUS=connected, 0 of 4 GPUs claimed",
        "WATCHDOG=1",
        "STATUS=two lines",
        "STOPPING=1\nSTATUS=stopping",
    ]


def test_an_abstract_socket_is_written_with_an_at_sign():
    name = f"gpubot-test-{uuid.uuid4()}"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(b"\0" + name.encode())
    receiver.settimeout(2)
    try:
        assert SystemdNotifier("@" + name).ready("up")
        assert receiver.recv(4096) == b"READY=1\nSTATUS=up"
    finally:
        receiver.close()


@pytest.mark.parametrize("socket_path", [None, ""])
def test_without_systemd_every_call_is_a_no_op(socket_path):
    notifier = SystemdNotifier(socket_path)
    assert not notifier.enabled
    assert not notifier.ready("up") and not notifier.watchdog() and not notifier.stopping()
    notifier.close()


def test_a_vanished_socket_is_logged_once_and_never_raises(tmp_path, caplog):
    notifier = SystemdNotifier(str(tmp_path / "gone"))
    assert not notifier.watchdog()
    assert not notifier.watchdog()
    assert len([r for r in caplog.records if "could not notify systemd" in r.getMessage()]) == 1
