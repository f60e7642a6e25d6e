"""Time to build the `/gpu status` dashboard, the realtime view and the Home view for 8, 64 and 256 GPUs.

Calls the pure builders in `gpubot.slack.blocks` directly, on a host where half the GPUs are claimed
and the person looking holds three of them, with an hour of utilization history per GPU. Each build
is timed on its own; the block counts and the JSON size show the views stay within Block Kit's limits.
The fleet case does the same for 32 hosts of 8 GPUs (one offline): the fleet's status, realtime, its Home
with one host shown in full, and the claim form with its host menu.

    python bench/view_scale.py --json-out views.json [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fleet import HOSTNAME, write_fake_host
from percentiles import summarize_s

from gpubot.core.dashboard import Dashboard, Fleet, FleetHome, GpuRow, HomeState
from gpubot.core.load import LoadThresholds, gpu_use
from gpubot.core.models import Claim, Gpu, HostSample
from gpubot.core.policy import ClaimPolicy
from gpubot.slack import blocks, fleet_messages, messages, views
from gpubot.telemetry.fake import FakeTelemetry

GPU_COUNTS = (8, 64, 256)
FLEET_HOSTS, FLEET_GPUS_PER_HOST = 32, 8
VIEWER = "U0VIEWER"
_NOW = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
_TIMEZONE = ZoneInfo("Europe/Berlin")
_TREND_BUCKETS = 12


def host_sample(gpu_count: int) -> HostSample:
    """The benchmark host's sample, read through the product's own fake backend."""
    with tempfile.TemporaryDirectory() as directory:
        return FakeTelemetry(write_fake_host(Path(directory) / "gpus.json", gpu_count)).sample()


def state_for(sample: HostSample, host: str = HOSTNAME) -> tuple[HomeState, dict[str, tuple[float | None, ...]]]:
    """Every other GPU claimed (three of them by the viewer), long purposes, a full hour of trend."""
    rows = []
    for position, gpu_sample in enumerate(sample.gpus):
        gpu = Gpu(host, gpu_sample.uuid, gpu_sample.index, gpu_sample.name)
        claim = None
        if position % 2 == 0:
            user = VIEWER if position < 6 else f"U0USER{position:04d}"
            claim = Claim(
                id=position + 1,
                host=host,
                gpu_uuid=gpu.uuid,
                gpu_index=gpu.index,
                user_id=user,
                purpose=f"fine-tune llama-3 70B on <the> & lab corpus, run {position}",
                started_at=_NOW - timedelta(hours=1),
                ends_at=_NOW + timedelta(hours=1, minutes=position),
            )
        rows.append(GpuRow(gpu=gpu, claim=claim, sample=gpu_sample, use=gpu_use(gpu_sample, LoadThresholds())))
    dashboard = Dashboard(host=host, rows=tuple(rows), now=_NOW, sample=sample)
    own = tuple(row.claim for row in rows if row.claim is not None and row.claim.user_id == VIEWER)
    trends = {
        gpu.uuid: tuple(
            None if (i + gpu.index) % 7 == 0 else float((i * 9 + gpu.index) % 100) for i in range(_TREND_BUCKETS)
        )
        for gpu in sample.gpus
    }
    return HomeState(user_id=VIEWER, own_claims=own, dashboard=dashboard), trends


def _timed(build: Any, repeats: int) -> list[float]:
    build()  # the first call may warm caches (zoneinfo, string interning)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        build()
        times.append(time.perf_counter() - started)
    return times


def measure(gpu_count: int, repeats: int) -> list[dict[str, Any]]:
    """Build each view `repeats` times for a host of `gpu_count` GPUs; one row per view."""
    sample = host_sample(gpu_count)
    state, trends = state_for(sample)
    policy, thresholds = ClaimPolicy(), LoadThresholds()
    builds: dict[str, Any] = {
        "dashboard": lambda: messages.status_message(state.dashboard, policy, _TIMEZONE).blocks,
        "realtime": lambda: messages.realtime_message(state.dashboard, sample, thresholds).blocks,
        "home": lambda: views.home_view(state, policy, _TIMEZONE, thresholds, trends)["blocks"],
    }
    limits = {
        "dashboard": blocks.MAX_MESSAGE_BLOCKS,
        "realtime": blocks.MAX_MESSAGE_BLOCKS,
        "home": blocks.MAX_VIEW_BLOCKS,
    }
    return [_row(view, gpu_count, build, limits[view], repeats) for view, build in builds.items()]


def fleet_state() -> tuple[FleetHome, dict[str, tuple[float | None, ...]]]:
    """32 hosts of 8 GPUs as `state_for` fills one, the eighth host offline; the viewer's claims on the first."""
    sample = host_sample(FLEET_GPUS_PER_HOST)
    hosts: list[Dashboard] = []
    trends: dict[str, tuple[float | None, ...]] = {}
    for number in range(FLEET_HOSTS):
        name = f"gpu-node-{number:02d}"
        state, host_trends = state_for(sample, name)
        trends.update(host_trends)
        online = number != 7
        hosts.append(
            Dashboard(name, state.dashboard.rows, _NOW, online, _NOW - timedelta(minutes=5), sample if online else None)
        )
    fleet = Fleet(tuple(hosts), _NOW)
    own = tuple(row.claim for row in hosts[0].rows if row.claim is not None and row.claim.user_id == VIEWER)
    return FleetHome(VIEWER, own, fleet, hosts[3]), trends


def measure_fleet(repeats: int) -> list[dict[str, Any]]:
    """Build each fleet view `repeats` times for 32 hosts of 8 GPUs; one row per view."""
    home, trends = fleet_state()
    fleet = home.fleet
    policy, thresholds = ClaimPolicy(), LoadThresholds()
    builds: dict[str, tuple[Any, int]] = {
        "fleet dashboard": (
            lambda: fleet_messages.status_message(fleet, None, policy, _TIMEZONE).blocks,
            blocks.MAX_MESSAGE_BLOCKS,
        ),
        "fleet realtime": (
            lambda: fleet_messages.realtime_message(fleet, None, thresholds, _TIMEZONE).blocks,
            blocks.MAX_MESSAGE_BLOCKS,
        ),
        "fleet home": (
            lambda: views.home_view(home, policy, _TIMEZONE, thresholds, trends)["blocks"],
            blocks.MAX_VIEW_BLOCKS,
        ),
        "fleet claim form": (
            lambda: views.fleet_claim_modal(fleet, policy, None, None)["blocks"],
            blocks.MAX_VIEW_BLOCKS,
        ),
    }
    return [_row(view, fleet.gpu_count, build, limit, repeats) for view, (build, limit) in builds.items()]


def _row(view: str, gpus: int, build: Any, limit: int, repeats: int) -> dict[str, Any]:
    built = build()
    summary = summarize_s(_timed(build, repeats))
    assert summary is not None
    return {
        "view": view,
        "gpus": gpus,
        "build": summary.as_dict(),
        "blocks": len(built),
        "block_limit": limit,
        "within_limit": len(built) <= limit,
        "json_bytes": len(json.dumps(built, ensure_ascii=False).encode()),
    }


def main(argv: list[str] | None = None) -> int:
    """Measure every view at every size and write the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json-out", type=Path, required=True, help="where to write the figures")
    parser.add_argument("--quick", action="store_true", help="a smoke run: a few builds per view")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 300
    rows = [row for count in GPU_COUNTS for row in measure(count, repeats)]
    figures = {"repeats": repeats, "views": [*rows, *measure_fleet(repeats)]}
    args.json_out.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
