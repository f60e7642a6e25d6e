"""ServiceWatchdog: READY once connected, a STATUS line with the claim count, pings only while healthy."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from gpubot.core.errors import StoreBusy, StoreReplaced
from gpubot.daemon.health import Health
from gpubot.daemon.watchdog import ClaimCount, ServiceWatchdog


class RecordingNotifier:
    """Records what would have gone to $NOTIFY_SOCKET."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def ready(self, status: str) -> bool:
        self.sent.append(f"READY=1 STATUS={status}")
        return True

    def status(self, status: str) -> bool:
        self.sent.append(f"STATUS={status}")
        return True

    def watchdog(self) -> bool:
        self.sent.append("WATCHDOG=1")
        return True

    def stopping(self, status: str = "stopping") -> bool:
        self.sent.append("STOPPING=1")
        return True


class Host:
    """The daemon as the watchdog sees it, every part settable."""

    def __init__(self) -> None:
        self.now_s = 1000.0
        self.connected = True
        self.claims: ClaimCount | Exception = ClaimCount(claimed=3, total=8)

    def clock(self) -> float:
        return self.now_s

    async def is_connected(self) -> bool:
        return self.connected

    async def count_claims(self) -> ClaimCount:
        if isinstance(self.claims, Exception):
            raise self.claims
        return self.claims


def make(host: Host, watchdog_interval: timedelta | None = timedelta(seconds=20)):
    notifier = RecordingNotifier()
    health = Health(reconnect_grace_s=180)
    watchdog = ServiceWatchdog(
        notifier,
        health,
        is_connected=host.is_connected,
        count_claims=host.count_claims,
        watchdog_interval=watchdog_interval,
        clock=host.clock,
    )
    return watchdog, notifier, health


def check(watchdog: ServiceWatchdog) -> str:
    return asyncio.run(watchdog.check_once())


def test_ready_once_connected_with_the_claim_count_then_pings():
    host = Host()
    watchdog, notifier, _ = make(host)

    assert check(watchdog) == "connected, 3 of 8 GPUs claimed"
    host.now_s += 5
    check(watchdog)

    assert notifier.sent == ["READY=1 STATUS=connected, 3 of 8 GPUs claimed", "WATCHDOG=1", "WATCHDOG=1"]
    assert watchdog.check_interval_s == 5  # half of WatchdogSec=20s would be 10; it checks at least every 5 s


def test_no_ready_and_no_ping_before_the_connection_is_up():
    host = Host()
    host.connected = False
    watchdog, notifier, _ = make(host)

    check(watchdog)
    assert notifier.sent == ["STATUS=reconnecting to Slack for 0 s, 3 of 8 GPUs claimed"]
    host.connected = True
    check(watchdog)
    assert notifier.sent[1:] == ["READY=1 STATUS=connected, 3 of 8 GPUs claimed", "WATCHDOG=1"]


def test_status_follows_the_claims_and_is_sent_only_when_it_changes():
    host = Host()
    watchdog, notifier, _ = make(host, watchdog_interval=None)
    check(watchdog)
    check(watchdog)
    host.claims = ClaimCount(claimed=4, total=8)
    check(watchdog)

    assert notifier.sent == ["READY=1 STATUS=connected, 3 of 8 GPUs claimed", "STATUS=connected, 4 of 8 GPUs claimed"]


def test_without_a_watchdog_no_pings_are_sent():
    host = Host()
    watchdog, notifier, _ = make(host, watchdog_interval=None)
    check(watchdog)
    assert "WATCHDOG=1" not in notifier.sent


def test_pings_stop_while_slack_is_down_past_the_grace_and_resume_after():
    host = Host()
    watchdog, notifier, _ = make(host)
    check(watchdog)
    host.connected = False
    check(watchdog)  # just went down: reconnecting is still healthy
    assert notifier.sent[-2:] == ["STATUS=reconnecting to Slack for 0 s, 3 of 8 GPUs claimed", "WATCHDOG=1"]

    host.now_s += 181
    notifier.sent.clear()
    check(watchdog)
    assert notifier.sent == [
        "STATUS=unhealthy: Slack disconnected for 181 s, reconnecting to Slack for 181 s, 3 of 8 GPUs claimed"
    ]
    host.connected = True
    check(watchdog)
    assert notifier.sent[-1] == "WATCHDOG=1"


def test_a_database_that_stops_answering_stops_the_pings():
    host = Host()
    watchdog, notifier, health = make(host)
    check(watchdog)
    host.claims = StoreBusy()
    host.now_s += 30
    check(watchdog)
    assert notifier.sent[-1] == "WATCHDOG=1"  # 30 s without an answer is within the database's 60 s

    host.now_s += 31
    notifier.sent.clear()
    assert check(watchdog).startswith("unhealthy: database silent for 61 s, connected")
    assert "WATCHDOG=1" not in notifier.sent
    assert not health.healthy(host.now_s)


def test_a_stuck_job_stops_the_pings():
    host = Host()
    watchdog, notifier, health = make(host)
    health.expect("scheduler", 30, host.now_s)
    check(watchdog)
    host.now_s += 31
    notifier.sent.clear()
    assert check(watchdog) == "unhealthy: scheduler has not run for 31 s, connected, 3 of 8 GPUs claimed"
    assert "WATCHDOG=1" not in notifier.sent


def test_stopping_is_sent():
    watchdog, notifier, _ = make(Host())
    watchdog.stopping()
    assert notifier.sent == ["STOPPING=1"]


def test_a_deleted_database_file_says_so_in_the_status_and_stops_the_pings_for_good():
    host = Host()
    watchdog, notifier, _ = make(host)
    check(watchdog)
    host.claims = StoreReplaced("/var/lib/gpubot/gpubot.db", "deleted")
    host.now_s += 5
    status = check(watchdog)
    assert status.startswith("unhealthy: database file /var/lib/gpubot/gpubot.db was deleted; restart gpubot")
    host.claims = ClaimCount(claimed=3, total=8)  # a later read would succeed (a new empty file, say)
    host.now_s += 5
    check(watchdog)
    assert notifier.sent[-1].startswith("STATUS=unhealthy: database file")  # sent once, then unchanged
    assert notifier.sent.count("WATCHDOG=1") == 1  # only the one before the file went
