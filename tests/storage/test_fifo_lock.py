"""`FifoLock` hands itself to waiting threads in the order they came, and a timed-out waiter leaves no trace."""

from __future__ import annotations

import threading
import time

import pytest

from gpubot.storage.fifo_lock import FifoLock

WAIT_S = 5.0


def _wait_for_waiters(lock: FifoLock, count: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while lock.waiting != count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{lock.waiting} threads wait, expected {count}")
        time.sleep(0.001)


def test_a_free_lock_is_taken_at_once_and_a_held_one_is_not() -> None:
    lock = FifoLock()
    assert lock.acquire(timeout=0)
    assert not lock.acquire(timeout=0.01)
    lock.release()
    assert lock.acquire(timeout=0)
    lock.release()


def test_releasing_a_lock_nobody_holds_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not held"):
        FifoLock().release()


def test_waiters_get_the_lock_in_the_order_they_asked() -> None:
    lock = FifoLock()
    assert lock.acquire(timeout=0)
    order: list[int] = []

    def take_turn(number: int) -> None:
        assert lock.acquire(timeout=WAIT_S)
        order.append(number)
        lock.release()

    threads = []
    for number in range(8):
        thread = threading.Thread(target=take_turn, args=(number,))
        thread.start()
        threads.append(thread)
        _wait_for_waiters(lock, number + 1)  # each in line before the next one starts
    # The releasing thread may not take it straight back: it joins the end of the queue like anyone.
    lock.release()
    assert lock.acquire(timeout=WAIT_S)
    order.append(-1)
    lock.release()
    for thread in threads:
        thread.join()
    assert order == [0, 1, 2, 3, 4, 5, 6, 7, -1]


def test_a_waiter_that_gave_up_is_never_handed_the_lock() -> None:
    lock = FifoLock()
    assert lock.acquire(timeout=0)
    outcome: list[bool] = []
    quitter = threading.Thread(target=lambda: outcome.append(lock.acquire(timeout=0.05)))
    quitter.start()
    quitter.join()
    assert outcome == [False]
    assert lock.waiting == 0
    lock.release()
    assert lock.acquire(timeout=0)  # free, not held by the thread that gave up
    lock.release()
