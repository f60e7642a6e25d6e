"""Is the daemon healthy? Named heartbeats plus the Slack connection, judged at a moment passed in.

The daemon's periodic jobs each `beat()` a heartbeat they declared with `expect()`; the Socket Mode
state is reported with `connection()`. `healthy(now_s)` is what decides whether systemd gets its
watchdog ping, so a job that hangs (NVML stuck in the driver, a database that stopped answering)
ends in a restart rather than a bot that looks alive and does nothing.

Times are seconds on one monotonic clock (`time.monotonic()`, which is also asyncio's `loop.time()`),
never the wall clock, so a clock step cannot fake a stall. Thread-safe: jobs in worker threads and
the event loop may beat at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

# How long Socket Mode may be reconnecting before the daemon counts as unhealthy. slack_sdk retries on
# its own; a few minutes covers a Slack incident or a network blip without restart churn.
DEFAULT_RECONNECT_GRACE_S = 180.0


@dataclass
class _Heartbeat:
    max_age_s: float
    # The last beat, or when it was declared: a job gets `max_age_s` to beat for the first time.
    last_s: float
    beaten: bool = False


class Health:
    """The daemon's health: every declared heartbeat fresh, and Slack connected (or only briefly not)."""

    def __init__(self, *, reconnect_grace_s: float = DEFAULT_RECONNECT_GRACE_S) -> None:
        """Start with no heartbeats and the connection not yet reported (counted as connected).

        Args:
            reconnect_grace_s: How long the Socket Mode connection may be down before it counts.
        """
        self._reconnect_grace_s = reconnect_grace_s
        self._heartbeats: dict[str, _Heartbeat] = {}
        self._down_since_s: float | None = None
        self._lock = threading.Lock()

    def expect(self, name: str, max_age_s: float, now_s: float) -> None:
        """Declare a heartbeat that must beat at least every `max_age_s` seconds from now on.

        Args:
            name: e.g. "telemetry", "database", "scheduler".
            max_age_s: The longest gap between beats that still counts as healthy; leave room for one
                slow run of the job (a few times its interval).
            now_s: The current monotonic time.

        Raises:
            ValueError: `max_age_s` is not positive.
        """
        if max_age_s <= 0:
            raise ValueError(f"max_age_s must be positive, not {max_age_s}")
        with self._lock:
            self._heartbeats[name] = _Heartbeat(max_age_s=max_age_s, last_s=now_s)

    def beat(self, name: str, now_s: float) -> None:
        """Record that the job `name` just completed a run.

        Raises:
            KeyError: `name` was never declared with `expect` (a typo would otherwise go unnoticed
                until systemd restarted the service).
        """
        with self._lock:
            heartbeat = self._heartbeats.get(name)
            if heartbeat is None:
                raise KeyError(f"unknown heartbeat {name!r}; declare it with Health.expect() first")
            heartbeat.last_s = max(heartbeat.last_s, now_s)
            heartbeat.beaten = True

    def connection(self, connected: bool, now_s: float) -> None:
        """Report the Socket Mode connection's state, as last observed."""
        with self._lock:
            if connected:
                self._down_since_s = None
            elif self._down_since_s is None:
                self._down_since_s = now_s

    def reconnecting_for_s(self, now_s: float) -> float | None:
        """Seconds the connection has been down, or None while it is up."""
        with self._lock:
            return None if self._down_since_s is None else max(now_s - self._down_since_s, 0.0)

    def problems(self, now_s: float) -> list[str]:
        """What makes the daemon unhealthy now, one short phrase each; empty when it is healthy."""
        with self._lock:
            found = [
                f"{name} silent for {now_s - heartbeat.last_s:.0f} s"
                if heartbeat.beaten
                else f"{name} has not run for {now_s - heartbeat.last_s:.0f} s"
                for name, heartbeat in sorted(self._heartbeats.items())
                if now_s - heartbeat.last_s > heartbeat.max_age_s
            ]
            if self._down_since_s is not None and now_s - self._down_since_s > self._reconnect_grace_s:
                found.append(f"Slack disconnected for {now_s - self._down_since_s:.0f} s")
        return found

    def healthy(self, now_s: float) -> bool:
        """True when every heartbeat is fresh and Slack is connected or reconnecting within the grace."""
        return not self.problems(now_s)
