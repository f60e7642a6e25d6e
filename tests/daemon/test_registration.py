"""`HostRegistration`: waiting for a held host name, giving up, losing it, releasing it (on the in-memory fleet)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import timedelta

import pytest

from gpubot.core.errors import HostNameTaken
from gpubot.core.models import HostRole, HostSample, ProcessIdentity
from gpubot.daemon.registration import HostRegistration
from gpubot.system_clock import SystemClock
from tests.fakes import InMemoryClaimStore

TIMEOUT = timedelta(seconds=1)
ME = ProcessIdentity(machine="gpu-a", pid=100, boot_id="boot-a")
OTHER = ProcessIdentity(machine="gpu-b", pid=200, boot_id="boot-b")
SAMPLE = HostSample("gpu-a", None, ())


def registration(store, lost: list[str] | None = None) -> HostRegistration:
    return HostRegistration(
        store.seen_from(ME),
        "gpu-a",
        HostRole.AGENT,
        ME,
        SystemClock(),
        TIMEOUT,
        on_lost=lambda: (lost if lost is not None else []).append("lost"),
    )


def held_by_other(store) -> None:
    store.seen_from(OTHER).register_host("gpu-a", HostRole.AGENT, "other", str(OTHER), SystemClock().now(), TIMEOUT)


def test_a_free_name_is_taken_at_once():
    store = InMemoryClaimStore()
    mine = registration(store)
    assert asyncio.run(mine.take(asyncio.Event())) is True
    [host] = store.hosts()
    assert host.holder == ME and mine.report(SAMPLE) is True


def test_a_held_name_is_waited_for_and_taken_once_its_holder_is_silent(caplog):
    store = InMemoryClaimStore()
    held_by_other(store)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        assert asyncio.run(registration(store).take(asyncio.Event())) is True
    assert time.monotonic() - started >= TIMEOUT.total_seconds()
    assert store.hosts()[0].holder == ME
    waits = [r.getMessage() for r in caplog.records if "waiting up to" in r.getMessage()]
    assert waits == ["host name gpu-a is held by pid 200 on machine gpu-b; waiting up to 1s for it to stop reporting"]


def test_a_holder_that_keeps_reporting_is_not_taken_over():
    store = InMemoryClaimStore()
    held_by_other(store)
    other = store.seen_from(OTHER)
    done = threading.Event()

    def keep_reporting() -> None:
        while not done.is_set():
            other.report("gpu-a", "other", SAMPLE, SystemClock().now())
            time.sleep(0.05)

    reporter = threading.Thread(target=keep_reporting)
    reporter.start()
    try:
        with pytest.raises(HostNameTaken, match="pid 200 on machine gpu-b"):
            asyncio.run(registration(store).take(asyncio.Event()))
    finally:
        done.set()
        reporter.join()
    assert store.hosts()[0].holder == OTHER


def test_a_stop_while_waiting_ends_the_wait_without_taking_the_name():
    store = InMemoryClaimStore()
    held_by_other(store)

    async def stopped_soon() -> bool:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.1, stop.set)
        return await registration(store).take(stop)

    assert asyncio.run(stopped_soon()) is False
    assert store.hosts()[0].holder == OTHER


def test_a_name_taken_after_a_silence_is_lost_once_naming_the_new_holder(caplog):
    store = InMemoryClaimStore()
    lost: list[str] = []
    mine = registration(store, lost)
    asyncio.run(mine.take(asyncio.Event()))
    time.sleep(TIMEOUT.total_seconds() + 0.05)  # silent past the time-out
    held_by_other(store)
    with caplog.at_level(logging.ERROR):
        assert mine.report(SAMPLE) is False
        assert mine.report(SAMPLE) is False  # nothing more is reported, nor said
    assert lost == ["lost"] and mine.lost is not None and mine.lost.holder == str(OTHER)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "pid 200 on machine gpu-b holds it" in errors[0]
    asyncio.run(mine.release())  # a lost name is not released: it is not this process's
    assert store.hosts()[0].holder == OTHER


def test_a_release_frees_the_name_for_a_successor():
    store = InMemoryClaimStore()
    mine = registration(store)
    asyncio.run(mine.take(asyncio.Event()))
    asyncio.run(mine.release())
    assert store.hosts()[0].holder is None
    other = store.seen_from(OTHER)
    other.register_host("gpu-a", HostRole.AGENT, "next", str(OTHER), SystemClock().now(), TIMEOUT)
