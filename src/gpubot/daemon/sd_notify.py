"""sd_notify(3) without a dependency: one datagram per message to `$NOTIFY_SOCKET`.

systemd reads `READY=1`, `STATUS=…`, `WATCHDOG=1` and `STOPPING=1` from that socket when the unit
says `Type=notify`. Outside systemd there is no socket and every method is a no-op, so the daemon
calls them unconditionally.
"""

from __future__ import annotations

import logging
import socket

logger = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends state changes to the service manager; never raises, never blocks the event loop."""

    def __init__(self, socket_path: str | None) -> None:
        """Open the socket if systemd named one.

        Args:
            socket_path: `$NOTIFY_SOCKET` (read by `Settings`): a filesystem path, or an abstract
                socket name starting with "@"; None or empty outside systemd.
        """
        self._address = _address(socket_path) if socket_path else None
        self._socket: socket.socket | None = None
        self._failed_before = False
        if self._address is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # A full receive queue must never stall the daemon; a lost STATUS is harmless.
            self._socket.setblocking(False)

    @property
    def enabled(self) -> bool:
        """Whether a service manager is listening."""
        return self._socket is not None

    def ready(self, status: str) -> bool:
        """Start-up is complete: systemd now counts the unit as started (and `After=` units may start)."""
        return self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        """Replace the one-line status `systemctl status gpubot` shows."""
        return self.send(f"STATUS={status}")

    def watchdog(self) -> bool:
        """Tell systemd the service is healthy; without this for `WatchdogSec=`, systemd restarts it."""
        return self.send("WATCHDOG=1")

    def stopping(self, status: str = "stopping") -> bool:
        """Shutdown has begun, so systemd does not mistake the exit for a crash or miss a watchdog ping."""
        return self.send("STOPPING=1", f"STATUS={status}")

    def send(self, *assignments: str) -> bool:
        """Send `KEY=value` assignments in one datagram.

        Args:
            assignments: e.g. "READY=1", "STATUS=connected". A newline inside a value would start a
                new assignment, so newlines become spaces.

        Returns:
            True when the datagram was sent; False outside systemd or when sending failed (logged once).
        """
        if self._socket is None or self._address is None:
            return False
        message = "\n".join(assignment.replace("\n", " ") for assignment in assignments)
        try:
            self._socket.sendto(message.encode("utf-8"), self._address)
        except OSError as error:
            # systemd going away (or a full queue) must not take the bot down; say so once, not per ping.
            if not self._failed_before:
                logger.warning("could not notify systemd at %s: %s", self._address, error)
                self._failed_before = True
            return False
        return True

    def close(self) -> None:
        """Close the socket; later calls are no-ops."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _address(socket_path: str) -> str | bytes:
    # An abstract socket is written "@name" in the environment; its real name starts with a NUL byte.
    if socket_path.startswith("@"):
        return b"\0" + socket_path[1:].encode("utf-8")
    return socket_path
