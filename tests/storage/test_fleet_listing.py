"""Every host's GPUs in one read (`list_gpus()`), as the fleet's views need them, on every store."""

from datetime import datetime, timezone

from sqlalchemy import Engine

from gpubot.core.dashboard import FleetHome
from gpubot.core.models import Gpu, GpuSample, HostReport, HostRole, HostSample
from gpubot.core.policy import ClaimPolicy, Purpose
from gpubot.core.ports import ClaimStore
from gpubot.core.selection import GpuSelection
from gpubot.core.service import ClaimService
from gpubot.storage.claim_store import SqlClaimStore
from tests.fakes import FakeClock

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)


def test_list_gpus_without_a_host_lists_every_hosts_by_host_then_index(store: ClaimStore) -> None:
    store.sync_gpus(
        "node2",
        [
            Gpu("node2", "B-1", 1, "A100"),
            Gpu("node2", "MIG-B-0-2", 0, "A100", mig_index=2, parent_uuid="B-0", mig_profile="3g.40gb"),
            Gpu("node2", "B-0", 0, "A100"),
        ],
        NOW,
    )
    store.sync_gpus("node1", [Gpu("node1", "A-0", 0, "H100")], NOW)
    store.sync_gpus("node3", [Gpu("node3", "C-0", 0, "H100")], NOW)
    store.sync_gpus("node3", [], NOW)  # node3's GPU is gone: no longer listed

    assert [(gpu.host, gpu.label) for gpu in store.list_gpus()] == [
        ("node1", "0"),
        ("node2", "0"),
        ("node2", "0.2"),
        ("node2", "1"),
    ]
    assert store.list_gpus() == [*store.list_gpus("node1"), *store.list_gpus("node2")]


def test_the_fleet_is_read_from_memory_with_no_database_call(sqlite_engine: Engine) -> None:
    """`/gpu status` and the Home tab in a fleet cost no database round trip while nothing changed."""
    store = SqlClaimStore(sqlite_engine)
    clock = FakeClock(NOW)
    local = HostSample("node1", "550", (GpuSample(0, "A-0", name="H100"),))
    remote = HostSample("node2", "550", (GpuSample(0, "B-0", name="A100"), GpuSample(1, "B-1", name="A100")))
    service = ClaimService(store, clock, ClaimPolicy(), host="node1")
    service.sync_inventory(local)
    service.fleet_reported([HostReport("node2", HostRole.AGENT, NOW, remote)])
    service.claim("U1", GpuSelection(labels=("1",), host="node2"), Purpose("train"), None, local)
    store.list_gpus()  # the snapshot is loaded once after the last write

    with store.answering_from_memory() as in_memory:
        assert in_memory
        fleet = service.fleet(local)
        home = service.home("U1", local, expanded="node2")
    assert fleet.names == ("node1", "node2") and fleet.host("node2").rows[1].claim is not None
    assert isinstance(home, FleetHome) and [c.label for c in home.own_claims] == ["1"]
