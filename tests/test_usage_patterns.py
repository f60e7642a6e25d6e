"""A claim through a known pattern of use, counted by the real store on SQLite, down to its receipt's exact words.

Busy, then idle, then someone else's process, then the host offline for five minutes, then its daemon killed and
another taking the host name over: what is counted, what is not observed, and nothing counted twice.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from gpubot.core.models import GpuSample, HostRole, HostSample, ProcessSample
from gpubot.core.policy import ClaimPolicy
from gpubot.core.selection import GpuSelection
from gpubot.core.service import ClaimService
from gpubot.core.usage import UsageRule
from gpubot.slack.messages import release_message
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import upgrade_to_head
from tests.fakes import FakeClock

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
RULE = UsageRule(interval=timedelta(seconds=2), active_pct=10)
TIMEOUT = timedelta(seconds=30)


def sample(utilization: int, *users: str) -> HostSample:
    processes = tuple(ProcessSample(100 + n, "python", 1024, user) for n, user in enumerate(users))
    gpu = GpuSample(0, "GPU-0", "NVIDIA H100 80GB HBM3", 81559, 1024 if users else 0, utilization, processes=processes)
    return HostSample("box", "580.1", (gpu,))


def test_busy_idle_someone_elses_job_offline_and_a_takeover_make_one_exact_receipt(tmp_path):
    url = f"sqlite:///{tmp_path / 'gpubot.db'}"
    upgrade_to_head(url)
    store = SqlClaimStore(make_engine(url))
    clock = FakeClock(T0 - timedelta(minutes=1))
    service = ClaimService(store, clock, ClaimPolicy(), "box")
    service.sync_inventory(sample(0))
    store.register_host("box", HostRole.SERVE, "first", "pid 1", clock.now(), TIMEOUT)
    clock.set(T0)
    service.claim("U0ALICE", GpuSelection(labels=("0",)), "train", timedelta(hours=1))

    def report(instance: str, seconds: int, observed: HostSample) -> None:
        assert store.report("box", instance, observed, T0 + timedelta(seconds=seconds), RULE)

    for n in range(1, 11):
        report("first", 2 * n, sample(90))  # 20 s busy
    for n in range(11, 21):
        report("first", 2 * n, sample(0))  # 20 s idle
    for n in range(21, 26):
        report("first", 2 * n, sample(0, "bob"))  # 10 s busy: bob's process on alice's GPU
    report("first", 350, sample(90))  # after 5 minutes offline: one interval, the rest not observed
    # The daemon is killed; another takes the name over once it has been silent past the time-out.
    store.register_host("box", HostRole.SERVE, "second", "pid 2", T0 + timedelta(seconds=390), TIMEOUT)
    report("second", 392, sample(90))
    report("second", 392, sample(90))  # the same moment again (a retry): counted once

    clock.set(T0 + timedelta(seconds=400))
    released = service.release("U0ALICE", GpuSelection(labels=("0",)))
    [claim] = released.released
    usage = released.usage[claim.id]
    assert (usage.tally.observed_s, usage.tally.busy_s) == (54.0, 34.0)
    assert usage.tally.utilization_avg == 40.0  # (90 × 24 s) / 54 s
    assert usage.users == frozenset({"bob"})
    text = json.dumps(release_message(released).blocks, ensure_ascii=False)
    assert "🧾 held 7m · busy 34s (63%) · average utilization 40% · peak memory 1 GiB · not observed 6m" in text
    assert "mostly idle" not in text  # under ten minutes observed: too little to judge
