"""Every host's GPUs in one read (`list_gpus()`), as the fleet's views need them, on every store."""

from datetime import datetime, timezone

from gpubot.core.models import Gpu
from gpubot.core.ports import ClaimStore

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
