"""Run every gpubot benchmark, write bench/results.json, print the report and put it into BENCHMARKS.md.

    .venv/bin/python bench/run_all.py            # the full run (about 4 minutes on 2 cores)
    .venv/bin/python bench/run_all.py --quick    # a smoke run (seconds): checks that everything runs

Each benchmark is its own script in bench/, run here as a process of its own so that none disturbs
another: socket_load.py (latency, throughput, memory, against the three Bolt floors), startup.py,
view_scale.py, telemetry_cost.py and expiry_precision.py. A quick run writes its figures where
--output says and never touches BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import percentiles
import report

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
# In the order they run: the short, quiet ones first, the load test last but one, expiry (mostly waiting) last.
BENCHMARKS = ("view_scale", "telemetry_cost", "startup", "socket_load", "expiry_precision")
_PACKAGES = ("slack_bolt", "slack_sdk", "aiohttp", "SQLAlchemy", "APScheduler")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def fsync_ms(samples: int = 50) -> dict[str, Any]:
    """How long this machine's disk takes to make a 4 KiB write durable, where the benchmarks keep their databases.

    gpubot commits every claim durably (SQLite WAL, synchronous=FULL: one fsync per commit), so this
    bounds how fast claims and releases can go one after another.
    """
    times = []
    with tempfile.NamedTemporaryFile(prefix="gpubot-bench-fsync-") as file:
        for _ in range(samples):
            file.write(b"x" * 4096)
            file.flush()
            started = time.perf_counter()
            os.fsync(file.fileno())
            times.append(time.perf_counter() - started)
    summary = percentiles.summarize_s(times)
    assert summary is not None
    return {"directory": tempfile.gettempdir(), **summary.as_dict()}


def machine() -> dict[str, Any]:
    """Where the figures come from."""
    packages = {}
    for name in _PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = "not installed"
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.release()}",
        "packages": packages,
        "git_commit": _git("rev-parse", "--short", "HEAD") or "unknown",
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "loadavg_before": _loadavg(),
        "fsync_4kib": fsync_ms(),
    }


def run_benchmark(name: str, out_dir: Path, extra: list[str]) -> dict[str, Any]:
    """Run bench/<name>.py as its own process and return the figures it wrote.

    Raises:
        RuntimeError: the script failed; the message carries its exit code.
    """
    json_out = out_dir / f"{name}.json"
    started = time.perf_counter()
    print(f"[run_all] {name} …", file=sys.stderr, flush=True)
    completed = subprocess.run([sys.executable, str(BENCH_DIR / f"{name}.py"), "--json-out", str(json_out), *extra])
    if completed.returncode != 0:
        raise RuntimeError(f"bench/{name}.py failed with exit code {completed.returncode}")
    print(f"[run_all] {name} done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    figures: dict[str, Any] = json.loads(json_out.read_text())
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run everything; returns 0 when every benchmark ran (met or missed targets alike)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: a few envelopes, a 1 s throughput run, 3 claims"
    )
    parser.add_argument(
        "--throughput-s", type=float, help="seconds of gpubot's throughput run (default 30; 1 with --quick)"
    )
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "results.json", help="where to write the results")
    parser.add_argument("--no-doc", action="store_true", help="do not write the figures into BENCHMARKS.md")
    args = parser.parse_args(argv)
    mode = ["--quick"] if args.quick else []
    results: dict[str, Any] = {"quick": args.quick, "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="gpubot-bench-") as out_name:
        for name in BENCHMARKS:
            extra = list(mode)
            if name == "socket_load" and args.throughput_s is not None:
                extra += ["--throughput-s", str(args.throughput_s)]
            key = {
                "socket_load": "load",
                "view_scale": "views",
                "telemetry_cost": "telemetry",
                "expiry_precision": "expiry",
            }.get(name, name)
            results[key] = run_benchmark(name, Path(out_name), extra)
    results["machine"]["loadavg_after"] = _loadavg()
    results["finished_at"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    figures = report.render(results)
    print(figures)
    if not args.quick and not args.no_doc:
        report.write_into(BENCHMARKS_MD, figures)
        print(f"[run_all] figures written into {BENCHMARKS_MD}", file=sys.stderr)
    print(f"[run_all] results in {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
