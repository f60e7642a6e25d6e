"""What one telemetry sample costs, per backend.

* fake: `FakeTelemetry.sample()` on the benchmark host of 8 and 64 GPUs (a JSON file read and parsed);
* nvidia-smi: `parse_nvidia_smi_xml` over every real capture in tests/data/nvidia-smi/
  (the parse only: no nvidia-smi runs on a machine without a GPU);
* NVML: a full sample (every field and process of every GPU) through `NvmlTelemetry`, beside one
  real `nvidia-smi -q -x` on the same machine. Only where NVML initialises; otherwise the entry says
  why it was skipped.

    python bench/telemetry_cost.py --json-out telemetry.json [--quick] [--fixtures DIR]
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleet import write_fake_host
from percentiles import summarize_s

from gpubot.core.errors import TelemetryError
from gpubot.core.ports import Telemetry
from gpubot.telemetry.fake import FakeTelemetry
from gpubot.telemetry.nvidia_smi import parse_nvidia_smi_xml

DEFAULT_FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "data" / "nvidia-smi"


def _timed(work: Callable[[], object], repeats: int) -> dict[str, Any]:
    work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    summary = summarize_s(times)
    assert summary is not None
    return summary.as_dict()


def fake_backend(repeats: int) -> list[dict[str, Any]]:
    """The fake backend's sample time for 8 and 64 GPUs."""
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for gpu_count in (8, 64):
            telemetry = FakeTelemetry(write_fake_host(Path(directory) / f"gpus-{gpu_count}.json", gpu_count))
            rows.append({"gpus": gpu_count, "sample": _timed(telemetry.sample, repeats)})
    return rows


def nvidia_smi_parse(fixtures: Path, repeats: int) -> dict[str, Any]:
    """Parse time of every XML capture in `fixtures`; skipped (with the reason) when there are none."""
    files = sorted(fixtures.glob("*.xml")) if fixtures.is_dir() else []
    if not files:
        return {"skipped": f"no nvidia-smi XML captures in {fixtures}"}
    rows = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        parsed = parse_nvidia_smi_xml(text, hostname="bench")
        rows.append(
            {
                "file": path.name,
                "gpus": len(parsed.gpus),
                "processes": sum(len(gpu.processes) for gpu in parsed.gpus),
                "kib": round(len(text.encode()) / 1024, 1),
                "parse": _timed(functools.partial(parse_nvidia_smi_xml, text, hostname="bench"), repeats),
            }
        )
    return {"fixtures": str(fixtures), "files": rows}


def _open_nvml() -> Telemetry:
    from gpubot.telemetry.nvml import NvmlTelemetry

    return NvmlTelemetry()


def nvml_backend(
    repeats: int, open_nvml: Callable[[], Telemetry] = _open_nvml, nvidia_smi: str | None = None
) -> dict[str, Any]:
    """A full NVML sample beside one `nvidia-smi -q -x`; skipped where NVML does not initialise.

    Args:
        repeats: how many samples to time.
        open_nvml: opens the NVML backend (tests pass one over a stand-in `pynvml`).
        nvidia_smi: the nvidia-smi executable; None looks for it on PATH.
    """
    try:
        telemetry = open_nvml()
    except (ImportError, TelemetryError) as error:
        return {"skipped": f"NVML is not available on this machine ({error})"}
    try:
        sample = telemetry.sample()
        figures: dict[str, Any] = {
            "gpus": len(sample.gpus),
            "processes": sum(len(gpu.processes) for gpu in sample.gpus),
            "sample": _timed(telemetry.sample, repeats),
        }
    finally:
        telemetry.close()
    executable = nvidia_smi or shutil.which("nvidia-smi")
    if executable is None:
        figures["nvidia_smi"] = {"skipped": "nvidia-smi is not on PATH"}
        return figures

    def run_nvidia_smi() -> None:
        subprocess.run([executable, "-q", "-x"], capture_output=True, check=True, timeout=30)

    figures["nvidia_smi"] = _timed(run_nvidia_smi, max(repeats // 20, 3))
    figures["nvidia_smi_over_nvml"] = round(figures["nvidia_smi"]["p50_ms"] / figures["sample"]["p50_ms"], 1)
    return figures


def main(argv: list[str] | None = None) -> int:
    """Measure every backend and write the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json-out", type=Path, required=True, help="where to write the figures")
    parser.add_argument("--quick", action="store_true", help="a smoke run: a few samples per backend")
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES, help="nvidia-smi XML captures")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 200
    figures = {
        "repeats": repeats,
        "fake": fake_backend(repeats),
        "nvidia_smi_parse": nvidia_smi_parse(args.fixtures, repeats),
        "nvml": nvml_backend(repeats),
    }
    args.json_out.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
