"""Start-up: process start → Socket Mode connected and ready, and SIGTERM → exit, for gpubot and the floors.

"Ready" is the moment gpubot logs `ready: connected…`, which is when it tells systemd READY=1: Slack
is connected, the database migrated, the first telemetry sample taken and the first health check
passed. "Connected" is when the stand-in has the app's Socket Mode connection (it sent `hello`).
Both count from just before the process is spawned, so interpreter start and imports are included.

The first start of gpubot is on an empty database (it creates the schema); the later ones are
restarts on that migrated database, which is what a service restart is.

    python bench/startup.py --json-out startup.json [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fleet import write_fake_host
from loopback import LoopbackSlack
from percentiles import summarize_s
from targets import FLOOR_DEFAULT, FLOOR_TUNED, TargetSpec, floor_spec, gpubot_spec, start_target


async def _start_stop(spec: TargetSpec, slack: LoopbackSlack) -> dict[str, float]:
    target = await start_target(spec, slack)
    rss_mib = target.rss_mib()
    stop_started = time.perf_counter()
    exit_code = await target.stop()
    if exit_code != 0:
        raise RuntimeError(f"{spec.name} exited with {exit_code}:\n{target.log()}")
    return {
        "connected_s": target.connected_s,
        "ready_s": target.ready_s,
        "stop_s": time.perf_counter() - stop_started,
        "rss_at_ready_mib": rss_mib,
    }


def _summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"starts": len(runs)}
    for field in ("connected_s", "ready_s", "stop_s"):
        summary = summarize_s([run[field] for run in runs])
        assert summary is not None
        out[field.replace("_s", "_ms")] = summary.as_dict()
    out["rss_at_ready_mib"] = round(max(run["rss_at_ready_mib"] for run in runs), 1)
    return out


async def run(restarts: int) -> dict[str, Any]:
    """One cold start of gpubot on an empty database, `restarts` restarts on it, and as many of each floor."""
    slack = await LoopbackSlack().start()
    try:
        with tempfile.TemporaryDirectory(prefix="gpubot-bench-") as state_name:
            state = Path(state_name)
            spec = gpubot_spec(slack, state, write_fake_host(state / "gpus.json", 8))
            empty_database = await _start_stop(spec, slack)
            restarted = [await _start_stop(spec, slack) for _ in range(restarts)]
            floors = {}
            for kind in (FLOOR_DEFAULT, FLOOR_TUNED):
                floors[kind] = _summary(
                    [await _start_stop(floor_spec(kind, slack, state), slack) for _ in range(restarts)]
                )
    finally:
        await slack.stop()
    return {
        "gpubot": {
            "empty_database": {key: round(value, 3) for key, value in empty_database.items()},
            "restart": _summary(restarted),
        },
        **floors,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure start-up and write the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json-out", type=Path, required=True, help="where to write the figures")
    parser.add_argument("--quick", action="store_true", help="a smoke run: one restart of each")
    args = parser.parse_args(argv)
    args.json_out.write_text(json.dumps(asyncio.run(run(1 if args.quick else 7)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
