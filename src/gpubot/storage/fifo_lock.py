"""`FifoLock`: a lock its waiters get in the order they asked for it."""

from __future__ import annotations

import threading
from collections import deque


class FifoLock:
    """A mutual-exclusion lock handed to waiting threads first come, first served.

    `threading.Lock` lets a releasing thread take the lock straight back (it barges past the threads already waiting),
    so under contention some waiters wait many turns (see BENCHMARKS.md, 'What was changed to meet the targets'). Here a
    release hands the lock directly to the longest waiter, so each waits for those ahead of it and no one else.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        # One lock per waiting thread, acquired once already: releasing it wakes that thread, owning.
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the lock.

        Returns:
            True when the caller now holds it; False when the time ran out first (it holds nothing).
        """
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        if turn.acquire(timeout=timeout):
            return True
        with self._mutex:
            try:
                self._waiters.remove(turn)
            except ValueError:
                return True  # handed over between the timeout and now: the caller holds it after all
            return False

    @property
    def waiting(self) -> int:
        """How many threads wait for the lock now."""
        with self._mutex:
            return len(self._waiters)

    def release(self) -> None:
        """Hand the lock to the longest waiter, or leave it free.

        Raises:
            RuntimeError: the lock is not held.
        """
        with self._mutex:
            if not self._held:
                raise RuntimeError("release of a FifoLock that is not held")
            if self._waiters:
                self._waiters.popleft().release()  # still held: now by that waiter
            else:
                self._held = False
