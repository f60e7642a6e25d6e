"""What the stand-in records and injects: the calls it answered, the app's acks, and the faults to answer with.

`CallLog` and `Faults` are the only parts of the stand-in shared between threads (the server's event loop and
the test or benchmark driving it), so both lock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from gpubot.standin.web_api import Body


class StandinError(Exception):
    """The stand-in was used wrongly or could not do what was asked."""


class StandinTimeoutError(StandinError, TimeoutError):
    """Something the stand-in waited for did not happen in time; the message names it."""


@dataclass(frozen=True)
class Call:
    """One recorded HTTP call to the stand-in.

    Attributes:
        method: The Web API method ("chat.postMessage"), or "response_url".
        params: The decoded arguments; JSON-string `blocks`/`view`/`attachments` are decoded.
        token: The token sent, from the Authorization header or a `token` field; None if none.
        path: The request path, e.g. "/api/chat.postMessage" or "/response/3".
        received_at: `time.perf_counter()` when the request arrived.
        http_status: The HTTP status the stand-in answered with.
        response: The JSON body it answered with (`{"ok": true}` for an accepted response URL post).
    """

    method: str
    params: Body
    token: str | None
    path: str
    received_at: float
    http_status: int
    response: Body


@dataclass(frozen=True)
class Ack:
    """The app's acknowledgement of one envelope.

    Attributes:
        envelope_id: The envelope this ack answers.
        payload: The ack's `payload` (e.g. the reply to a slash command), or None for a bare ack.
        latency_s: Seconds from sending the envelope to receiving the ack (`time.perf_counter`).
        envelope: The envelope as sent.
        connection: The serial number of the connection it went to (1 for the first ever).
    """

    envelope_id: str
    payload: Body | None
    latency_s: float
    envelope: Body
    connection: int = 0


@dataclass(frozen=True)
class _Fault:
    error: str
    retry_after_s: int | None


class CallLog:
    """The thread-safe record of every HTTP call, which other threads can wait on."""

    def __init__(self) -> None:
        """Create an empty log."""
        self._calls: list[Call] = []
        self._changed = threading.Condition()

    def append(self, call: Call) -> None:
        """Record a call and wake the waiters."""
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()

    def snapshot(self, method: str | None = None) -> list[Call]:
        """Return the recorded calls, oldest first, optionally only those of one method."""
        with self._changed:
            return [call for call in self._calls if method is None or call.method == method]

    def clear(self) -> None:
        """Forget every recorded call."""
        with self._changed:
            self._calls.clear()

    def wait(self, method: str, count: int, predicate: Callable[[Call], bool] | None, timeout: float) -> list[Call]:
        """Block until `count` recorded calls of `method` match `predicate`; calls already recorded count.

        Args:
            method: The method name, or "response_url".
            count: How many matching calls to wait for.
            predicate: Extra condition on a call; None accepts every call of `method`.
            timeout: Seconds to wait.

        Returns:
            The first `count` matching calls, oldest first.

        Raises:
            StandinTimeoutError: Fewer than `count` matched within `timeout`.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matches = [c for c in self._calls if c.method == method and (predicate is None or predicate(c))]
                remaining = deadline - time.monotonic()
                if len(matches) >= count:
                    return matches[:count]
                if remaining <= 0:
                    seen = dict(Counter(call.method for call in self._calls))
                    condition = " matching the predicate" if predicate is not None else ""
                    raise StandinTimeoutError(
                        f"waited {timeout} s for {count} {method} call(s){condition}, "
                        f"got {len(matches)}; calls recorded: {seen}"
                    )
                self._changed.wait(remaining)


class Faults:
    """Failures to inject into upcoming HTTP calls; thread-safe so tests can arm them directly."""

    def __init__(self) -> None:
        """Start with no faults."""
        self._lock = threading.Lock()
        self._pending: dict[str, deque[_Fault]] = {}
        self._outage = False

    def fail_next(self, method: str, error: str, times: int) -> None:
        """Make the next `times` calls of `method` fail with Slack error code `error`."""
        self._add(method, _Fault(error, None), times)

    def rate_limit_next(self, method: str, retry_after_s: int, times: int) -> None:
        """Make the next `times` calls of `method` answer HTTP 429 with `Retry-After: retry_after_s`."""
        self._add(method, _Fault("ratelimited", retry_after_s), times)

    def _add(self, method: str, fault: _Fault, times: int) -> None:
        if times < 1:
            raise ValueError(f"times must be at least 1, not {times}")
        with self._lock:
            self._pending.setdefault(method, deque()).extend([fault] * times)

    def start_outage(self) -> None:
        """Answer every HTTP call with 503 until `clear()`."""
        with self._lock:
            self._outage = True

    def clear(self) -> None:
        """End an outage and drop every pending fault."""
        with self._lock:
            self._outage = False
            self._pending.clear()

    def take(self, method: str) -> tuple[int, str, dict[str, str]] | None:
        """Consume the fault for this call of `method`, if any.

        Returns:
            (HTTP status, Slack error code, extra headers), or None to answer normally.
        """
        with self._lock:
            if self._outage:
                return 503, "service_unavailable", {}
            queue = self._pending.get(method)
            if not queue:
                return None
            fault = queue.popleft()
        if fault.retry_after_s is None:
            return 200, fault.error, {}
        return 429, fault.error, {"Retry-After": str(fault.retry_after_s)}
