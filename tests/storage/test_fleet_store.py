"""The fleet's registry of host names, one contract on the in-memory fake, SQLite and PostgreSQL.

Two processes on one database are two stores on one engine (or one fake's shared hosts), each registering as a
process of its own: a machine, a PID and a boot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from gpubot.core.errors import HostNameTaken
from gpubot.core.models import GpuSample, HostRole, HostSample, ProcessIdentity
from gpubot.storage.claim_store import SqlClaimStore
from tests.fakes import InMemoryClaimStore
from tests.storage.conftest import needs_postgres

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
TIMEOUT = timedelta(seconds=30)
A = ProcessIdentity(machine="gpu-a", pid=1000, boot_id="boot-a")
B = ProcessIdentity(machine="gpu-b", pid=2000, boot_id="boot-b")
# A's machine after the process died and systemd started another (same boot, new PID).
A_RESTARTED = ProcessIdentity(machine="gpu-a", pid=1001, boot_id="boot-a")
SAMPLE = HostSample(
    hostname="gpu-a",
    driver_version="550.54.15",
    gpus=(GpuSample(index=0, uuid="GPU-0", name="H100", utilization_gpu_pct=40),),
)

# Builds the store a process registers through: (process, PIDs alive on its machine) -> store.
Opener = Callable[..., object]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=needs_postgres)])
def open_as(request: pytest.FixtureRequest) -> Opener:
    """Stores of several processes on one database."""
    if request.param == "memory":
        shared = InMemoryClaimStore()

        def memory(process: ProcessIdentity, alive: frozenset[int] = frozenset()) -> object:
            return shared.seen_from(process, lambda pid: pid in alive or pid == process.pid)

        return memory
    engine = request.getfixturevalue(f"{request.param}_engine")

    def sql(process: ProcessIdentity, alive: frozenset[int] = frozenset()) -> object:
        return SqlClaimStore(engine, process=process, pid_alive=lambda pid: pid in alive or pid == process.pid)

    return sql


def register(store, instance: str, process: ProcessIdentity, now: datetime = NOW, name: str = "gpu-a") -> None:
    store.register_host(name, HostRole.AGENT, instance, str(process), now, TIMEOUT)


def only_host(store):
    [host] = store.hosts()
    return host


def test_a_new_name_is_registered_with_its_holder_and_no_sample_yet(open_as):
    store = open_as(A)
    assert store.hosts() == []
    register(store, "one", A)
    host = only_host(store)
    assert (host.name, host.role, host.last_report_at) == ("gpu-a", HostRole.AGENT, NOW)
    assert host.sample is None and host.holder == A
    assert host.online(NOW + TIMEOUT, TIMEOUT) and not host.online(NOW + TIMEOUT + timedelta(seconds=1), TIMEOUT)


def test_reports_write_the_sample_and_the_time_and_a_failed_read_clears_the_sample(open_as):
    store = open_as(A)
    register(store, "one", A)
    assert store.report("gpu-a", "one", SAMPLE, NOW + timedelta(seconds=2)) is True
    host = only_host(store)
    assert host.sample == SAMPLE and host.last_report_at == NOW + timedelta(seconds=2)
    # Telemetry failing: alive, but an old sample must not pass for a current one.
    assert store.report("gpu-a", "one", None, NOW + timedelta(seconds=4)) is True
    host = only_host(store)
    assert host.sample is None and host.last_report_at == NOW + timedelta(seconds=4)


def test_a_report_of_an_instance_that_does_not_hold_the_name_is_refused_and_changes_nothing(open_as):
    store = open_as(A)
    register(store, "one", A)
    assert store.report("gpu-a", "someone-else", SAMPLE, NOW + timedelta(seconds=2)) is False
    assert store.report("gpu-never", "one", SAMPLE, NOW + timedelta(seconds=2)) is False
    host = only_host(store)
    assert host.sample is None and host.last_report_at == NOW


def test_another_machine_is_refused_while_the_holder_reports_and_nothing_is_written(open_as):
    first, second = open_as(A), open_as(B)
    register(first, "one", A)
    assert first.report("gpu-a", "one", SAMPLE, NOW + timedelta(seconds=20)) is True
    with pytest.raises(HostNameTaken) as refused:
        register(second, "two", B, now=NOW + timedelta(seconds=45))
    assert refused.value.holder == str(A) and refused.value.last_report_at == NOW + timedelta(seconds=20)
    assert "pid 1000 on machine gpu-a" in str(refused.value) and "GPUBOT_HOST_NAME" in str(refused.value)
    host = only_host(first)
    assert host.holder == A and host.sample == SAMPLE
    assert first.report("gpu-a", "one", SAMPLE, NOW + timedelta(seconds=46)) is True


def test_a_holder_silent_longer_than_the_timeout_is_taken_over_and_its_next_report_refused(open_as):
    first, second = open_as(A), open_as(B)
    register(first, "one", A)
    with pytest.raises(HostNameTaken):
        register(second, "two", B, now=NOW + TIMEOUT)  # silent for exactly the time-out: still held
    register(second, "two", B, now=NOW + TIMEOUT + timedelta(seconds=1))
    assert only_host(second).holder == B
    assert first.report("gpu-a", "one", SAMPLE, NOW + TIMEOUT + timedelta(seconds=2)) is False
    assert second.report("gpu-a", "two", SAMPLE, NOW + TIMEOUT + timedelta(seconds=2)) is True


def test_on_the_same_machine_and_boot_a_dead_holder_is_taken_over_at_once(open_as):
    crashed = open_as(A)
    register(crashed, "one", A)
    restarted = open_as(A_RESTARTED)  # PID 1000 is not alive there
    register(restarted, "two", A_RESTARTED, now=NOW + timedelta(seconds=1))
    assert only_host(restarted).holder == A_RESTARTED


def test_on_the_same_machine_a_live_holder_is_refused(open_as):
    register(open_as(A), "one", A)
    beside = open_as(A_RESTARTED, alive=frozenset({A.pid}))
    with pytest.raises(HostNameTaken):
        register(beside, "two", A_RESTARTED, now=NOW + timedelta(seconds=1))


def test_a_machine_of_the_same_name_in_another_boot_is_refused(open_as):
    # Two machines with one hostname look like this too: the PID cannot be looked up, so only silence frees it.
    register(open_as(A), "one", A)
    other_boot = ProcessIdentity(machine="gpu-a", pid=1001, boot_id="boot-a2")
    with pytest.raises(HostNameTaken):
        register(open_as(other_boot), "two", other_boot, now=NOW + timedelta(seconds=1))


def test_a_released_name_is_taken_at_once_and_keeps_its_last_report(open_as):
    first, second = open_as(A), open_as(B)
    register(first, "one", A)
    first.report("gpu-a", "one", SAMPLE, NOW + timedelta(seconds=2))
    second.release_host("gpu-a", "not-the-holder")  # changes nothing
    assert only_host(first).holder == A
    first.release_host("gpu-a", "one")
    host = only_host(first)
    assert host.holder is None and host.last_report_at == NOW + timedelta(seconds=2) and host.sample == SAMPLE
    register(second, "two", B, now=NOW + timedelta(seconds=3))
    assert only_host(second).holder == B
    assert first.report("gpu-a", "one", SAMPLE, NOW + timedelta(seconds=4)) is False


def test_hosts_are_listed_by_name_with_their_roles(open_as):
    store = open_as(A)
    store.register_host("gpu-b", HostRole.SERVE, "one", str(A), NOW, TIMEOUT)
    store.register_host("gpu-a", HostRole.AGENT, "two", str(A), NOW, TIMEOUT)
    assert [(host.name, host.role) for host in store.hosts()] == [("gpu-a", HostRole.AGENT), ("gpu-b", HostRole.SERVE)]


def test_a_naive_time_is_refused(open_as):
    store = open_as(A)
    with pytest.raises(ValueError, match="now"):
        register(store, "one", A, now=NOW.replace(tzinfo=None))
    assert store.hosts() == []


def test_of_two_machines_registering_one_name_at_once_exactly_one_wins(open_as):
    processes = [ProcessIdentity(machine=f"gpu-{n}", pid=3000 + n, boot_id=f"boot-{n}") for n in range(4)]
    stores = [open_as(process) for process in processes]
    start = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def race(number: int) -> None:
        start.wait()
        try:
            register(stores[number], f"instance-{number}", processes[number])
            outcomes.append("won")
        except HostNameTaken:
            outcomes.append("refused")

    threads = [threading.Thread(target=race, args=(number,)) for number in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["refused", "refused", "refused", "won"]
    winner = only_host(stores[0]).holder
    assert winner in processes


def test_reports_leave_the_claims_snapshot_answering_from_memory(sqlite_engine):
    # A host reports every couple of seconds: that must not cost `/gpu status` a reload each time.
    store = SqlClaimStore(sqlite_engine, process=A)
    register(store, "one", A)
    store.active_claims()  # loads the snapshot
    assert store.report("gpu-a", "one", SAMPLE, NOW + timedelta(seconds=2)) is True
    with store.answering_from_memory() as from_memory:
        assert from_memory
        assert store.active_claims() == []
