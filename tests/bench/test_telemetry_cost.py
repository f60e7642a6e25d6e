"""The NVML half of `bench/telemetry_cost.py` and its verdict, run over a simulated driver under the real binding.

No machine here has a GPU, so without this the code that times NVML and one `nvidia-smi -q -x` would first
run on the day a GPU is lent. Nothing here is timed: the figures' shape and the verdict's logic are.
"""

from __future__ import annotations

import stat
from pathlib import Path
from types import ModuleType

import pytest

from gpubot.telemetry.nvml import NvmlTelemetry
from tests.telemetry.nvml_driver import Gpu, Process, SimulatedDriver, install, no_library

REPO = Path(__file__).resolve().parents[2]
CAPTURE = REPO / "tests" / "data" / "nvidia-smi" / "telegraf__a100-sxm4-v12.xml"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, ModuleType]:
    """`telemetry_cost` and `report`, imported as `run_all.py` runs them (bench/ on the path)."""
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import report
    import telemetry_cost

    return telemetry_cost, report


@pytest.fixture
def fake_nvidia_smi(tmp_path: Path) -> Path:
    """An `nvidia-smi` that prints a real capture, as the real one prints the machine's."""
    script = tmp_path / "nvidia-smi"
    script.write_text(f"#!/bin/sh\ncat '{CAPTURE}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _four_gpus(monkeypatch: pytest.MonkeyPatch, proc: Path) -> NvmlTelemetry:
    gpus = [
        Gpu(uuid=f"GPU-{index}".encode(), compute=[Process(1000 + index, 4096)] if index % 2 else [])
        for index in range(4)
    ]
    install(monkeypatch, SimulatedDriver(gpus))
    return NvmlTelemetry(proc_root=proc)


def test_where_nvml_answers_a_full_sample_is_timed_beside_nvidia_smi(
    bench: tuple[ModuleType, ModuleType], fake_nvidia_smi: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry_cost, report = bench
    figures = telemetry_cost.nvml_backend(
        3, open_nvml=lambda: _four_gpus(monkeypatch, tmp_path / "proc"), nvidia_smi=str(fake_nvidia_smi)
    )
    assert (figures["gpus"], figures["processes"]) == (4, 2)
    assert figures["sample"]["count"] == 3 and figures["nvidia_smi"]["count"] == 3
    assert figures["nvidia_smi_over_nvml"] == round(figures["nvidia_smi"]["p50_ms"] / figures["sample"]["p50_ms"], 1)
    verdict = report.nvml_verdict(figures)
    assert "for 4 GPUs and 2 processes" in verdict.measured
    assert verdict.met is (figures["sample"]["p99_ms"] <= 10 and figures["nvidia_smi_over_nvml"] >= 20)


def test_where_nvml_does_not_initialise_the_figure_says_why_and_is_not_judged(
    bench: tuple[ModuleType, ModuleType], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry_cost, report = bench
    no_library(monkeypatch)
    figures = telemetry_cost.nvml_backend(3, open_nvml=lambda: NvmlTelemetry(proc_root=tmp_path))
    assert figures == {
        "skipped": "NVML is not available on this machine (NVML could not be initialised: "
        "NVML Shared Library Not Found.)"
    }
    verdict = report.nvml_verdict(figures)
    assert (verdict.met, verdict.mark) == (None, "not measured")


@pytest.mark.parametrize(
    ("sample_p99_ms", "speedup", "met"),
    [(4.0, 35.0, True), (4.0, 12.0, False), (14.0, 35.0, False), (4.0, None, None), (14.0, None, False)],
)
def test_the_nvml_target_needs_both_its_halves(
    bench: tuple[ModuleType, ModuleType], sample_p99_ms: float, speedup: float | None, met: bool | None
) -> None:
    _, report = bench
    figures: dict[str, object] = {"gpus": 8, "processes": 3, "sample": {"p50_ms": 2.0, "p99_ms": sample_p99_ms}}
    if speedup is None:
        figures["nvidia_smi"] = {"skipped": "nvidia-smi is not on PATH"}
    else:
        figures |= {"nvidia_smi": {"p50_ms": 2.0 * speedup, "p99_ms": 2.0 * speedup}, "nvidia_smi_over_nvml": speedup}
    assert report.nvml_verdict(figures).met is met
