"""The benchmarks' pretend GPU host: N H100s in the `fake` backend's JSON format, deterministic.

The same document feeds the daemon (through GPUBOT_FAKE_GPUS) and the view-scale benchmark (through
`FakeTelemetry`), so both see one host: a mix of busy, idle and lost GPUs, some with processes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HOSTNAME = "bench-gpu-host"


def fake_host(gpu_count: int) -> dict[str, Any]:
    """A host of `gpu_count` GPUs: utilization cycling 0-95 %, every 16th GPU lost, most with 1-3 processes."""
    gpus: list[dict[str, Any]] = []
    for index in range(gpu_count):
        if index % 16 == 15:  # keep in step with responding_gpu
            gpus.append(
                {"index": index, "name": "NVIDIA H100 80GB HBM3", "uuid": f"GPU-BENCH-{index:04d}", "lost": True}
            )
            continue
        utilization = (index * 37) % 100
        processes = [
            {"pid": 10_000 + index * 10 + n, "name": "python", "used_memory_mib": 4096 * (n + 1), "user": f"user{n}"}
            for n in range(index % 4)
        ]
        gpus.append(
            {
                "index": index,
                "name": "NVIDIA H100 80GB HBM3",
                "uuid": f"GPU-BENCH-{index:04d}",
                "memory_total_mib": 81559,
                "memory_used_mib": sum(p["used_memory_mib"] for p in processes),
                "utilization_gpu_pct": utilization,
                "temperature_c": 30 + utilization // 2,
                "power_draw_w": 70.0 + 6.3 * utilization,
                "power_limit_w": 700.0,
                "processes": processes,
            }
        )
    return {"hostname": HOSTNAME, "driver_version": "550.54.15", "gpus": gpus}


def responding_gpu(worker: int) -> int:
    """The index of the `worker`-th GPU that answers (lost GPUs cannot be claimed), counting from 0."""
    return worker + worker // 15


def write_fake_host(path: Path, gpu_count: int) -> Path:
    """Write `fake_host(gpu_count)` to `path` and return the path."""
    path.write_text(json.dumps(fake_host(gpu_count)), encoding="utf-8")
    return path
