"""Many fleet hosts from one process: registers N hosts of 8 GPUs and reports each one's sample every interval.

What N `gpubot agent` processes would write, through the same store calls (`register_host`, `sync_gpus`, and a
`report` that counts usage), at the same interval, for a fraction of the processes:

    python bench/fleet_agents.py --url postgresql+psycopg://… --hosts 31 [--gpus 8] [--interval 2]

Prints `ready` on stderr after the first round of reports and exits 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

from gpubot.core.models import Gpu, GpuSample, HostRole, HostSample, ProcessSample
from gpubot.core.usage import UsageRule
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine


def host_name(number: int) -> str:
    """The simulated hosts' names: sim-00, sim-01, …"""
    return f"sim-{number:02d}"


def sample(name: str, gpus: int, tick: int) -> HostSample:
    """A host's GPUs at one tick: utilization moving, a process on every other GPU."""
    return HostSample(
        name,
        "580.159.04",
        tuple(
            GpuSample(
                index,
                f"GPU-{name}-{index}",
                "NVIDIA H100 80GB HBM3",
                81559,
                20_000 if index % 2 else 0,
                (index * 37 + tick * 7) % 100,
                40 + index,
                200.0 + index,
                700.0,
                (ProcessSample(50_000 + index, "python", 20_000, f"user{index}"),) if index % 2 else (),
            )
            for index in range(gpus)
        ),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--hosts", type=int, default=31)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    store = SqlClaimStore(make_engine(args.url))
    interval = timedelta(seconds=args.interval)
    rule = UsageRule(interval, active_pct=10)
    instance = uuid.uuid4().hex
    names = [host_name(number) for number in range(args.hosts)]
    now = datetime.now(timezone.utc)
    for name in names:
        store.register_host(name, HostRole.AGENT, instance, f"bench agent {name}", now, 15 * interval)
        first = sample(name, args.gpus, 0)
        store.sync_gpus(name, [Gpu(name, gpu.uuid, gpu.index, gpu.name) for gpu in first.gpus], now)
    tick = 0
    while not stop.is_set():
        started = time.monotonic()
        for name in names:
            store.report(name, instance, sample(name, args.gpus, tick), datetime.now(timezone.utc), rule)
        if tick == 0:
            print("ready", file=sys.stderr, flush=True)
        tick += 1
        stop.wait(max(0.0, args.interval - (time.monotonic() - started)))
    for name in names:
        store.release_host(name, instance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
