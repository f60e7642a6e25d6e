"""Time to build the `/gpu status` dashboard, the realtime view and the Home view for 8, 64 and 256 GPUs.

Calls the pure builders in `gpubot.slack.blocks` directly, on a host where half the GPUs are claimed
and the person looking holds three of them, with an hour of utilization history per GPU. Each build
is timed on its own; the block counts and the JSON size show the views stay within Block Kit's limits.

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

from gpubot.core.dashboard import Dashboard, GpuRow, HomeState
from gpubot.core.load import LoadThresholds, gpu_use
from gpubot.core.models import Claim, Gpu, HostSample
from gpubot.core.policy import ClaimPolicy
from gpubot.slack import blocks, messages, views
from gpubot.telemetry.fake import FakeTelemetry

GPU_COUNTS = (8, 64, 256)
VIEWER = "U0VIEWER"
_NOW = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
_TIMEZONE = ZoneInfo("Europe/Berlin")
_TREND_BUCKETS = 12


def host_sample(gpu_count: int) -> HostSample:
    """The benchmark host's sample, read through the product's own fake backend."""
    with tempfile.TemporaryDirectory() as directory:
        return FakeTelemetry(write_fake_host(Path(directory) / "gpus.json", gpu_count)).sample()


def state_for(sample: HostSample) -> tuple[HomeState, dict[str, tuple[float | None, ...]]]:
    """Every other GPU claimed (three of them by the viewer), long purposes, a full hour of trend."""
    rows = []
    for position, gpu_sample in enumerate(sample.gpus):
        gpu = Gpu(HOSTNAME, gpu_sample.uuid, gpu_sample.index, gpu_sample.name)
        claim = None
        if position % 2 == 0:
            user = VIEWER if position < 6 else f"U0USER{position:04d}"
            claim = Claim(
                id=position + 1,
                host=HOSTNAME,
                gpu_uuid=gpu.uuid,
                gpu_index=gpu.index,
                user_id=user,
                purpose=f"fine-tune llama-3 70B on <the> & lab corpus, run {position}",
                started_at=_NOW - timedelta(hours=1),
                ends_at=_NOW + timedelta(hours=1, minutes=position),
            )
        rows.append(GpuRow(gpu=gpu, claim=claim, sample=gpu_sample, use=gpu_use(gpu_sample, LoadThresholds())))
    dashboard = Dashboard(host=HOSTNAME, rows=tuple(rows), now=_NOW)
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
    rows = []
    for view, build in builds.items():
        built = build()
        summary = summarize_s(_timed(build, repeats))
        assert summary is not None
        rows.append(
            {
                "view": view,
                "gpus": gpu_count,
                "build": summary.as_dict(),
                "blocks": len(built),
                "block_limit": limits[view],
                "within_limit": len(built) <= limits[view],
                "json_bytes": len(json.dumps(built, ensure_ascii=False).encode()),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Measure every view at every size and write the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json-out", type=Path, required=True, help="where to write the figures")
    parser.add_argument("--quick", action="store_true", help="a smoke run: a few builds per view")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 300
    figures = {"repeats": repeats, "views": [row for count in GPU_COUNTS for row in measure(count, repeats)]}
    args.json_out.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
