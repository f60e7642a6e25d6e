"""Check gpubot's telemetry on a real GPU host: NVML beside `nvidia-smi -q -x`, a CUDA process of its own, timings.

On the machine with the GPUs, from a checkout with gpubot installed:

    python bench/verify_gpu.py [--nvidia-smi PATH] [--json-out FILE]

It reads the GPUs through both backends (`NvmlTelemetry`, `NvidiaSmiTelemetry`) and compares them: GPU count,
order, UUIDs, names and driver version exactly; memory total within 1 %, power limit within 1 W, temperature
within 3 °C; the PIDs on each GPU and MIG slice. It starts a small CUDA process of its own (a context and a
64 MiB allocation through libcuda with ctypes, else torch, else cupy) and looks for it in both, with this
user as its owner and its name. Then it times a full NVML sample (p50/p95 of 200) against `nvidia-smi -q -x`
through the parser (p50/p95 of 10). Targets: the NVML sample within 10 ms for 8 GPUs (scaled for more),
and at least 20 times faster than nvidia-smi.

Prints a readable report, then one JSON line. Exit 0: all agree and the targets are met; 1: a mismatch or a
missed target; 2: no GPU (or no NVML or nvidia-smi) to verify on.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import select
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from percentiles import percentile

from gpubot.core.errors import TelemetryError
from gpubot.core.models import GpuSample, HostSample, ProcessSample

MEMORY_TOLERANCE = 0.01
POWER_LIMIT_TOLERANCE_W = 1.0
TEMPERATURE_TOLERANCE_C = 3
NVML_TARGET_MS_PER_8_GPUS = 10.0
SPEEDUP_TARGET = 20.0
# How long a CUDA context may take to come up (the first cuInit after boot loads the driver).
READY_TIMEOUT_S = 60.0

# Ways to hold a CUDA context with memory on GPU 0, cheapest first; each prints "ready" and waits for stdin.
_LIBCUDA = """
import ctypes, sys
cuda = ctypes.CDLL("libcuda.so.1")
device, context, memory = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_uint64()
for call, args in (("cuInit", (0,)), ("cuDeviceGet", (ctypes.byref(device), 0)),
                   ("cuDevicePrimaryCtxRetain", (ctypes.byref(context), device)),
                   ("cuCtxSetCurrent", (context,)), ("cuMemAlloc_v2", (ctypes.byref(memory), 64 << 20))):
    status = getattr(cuda, call)(*args)
    if status:
        sys.exit(f"{call} failed with CUDA error {status}")
print("ready", flush=True)
sys.stdin.read()
"""
_TORCH = """
import sys, torch
held = torch.empty(64 << 20, dtype=torch.uint8, device="cuda:0")
torch.cuda.synchronize()
print("ready", flush=True)
sys.stdin.read()
"""
_CUPY = """
import sys, cupy
held = cupy.empty(64 << 20, dtype=cupy.uint8)
print("ready", flush=True)
sys.stdin.read()
"""
HOLDERS = (("libcuda", _LIBCUDA), ("torch", _TORCH), ("cupy", _CUPY))


@dataclass(frozen=True)
class Mismatch:
    """One way the two backends (or the CUDA process) disagree with what is expected."""

    what: str
    where: str
    nvml: Any
    nvidia_smi: Any

    def __str__(self) -> str:
        return f"{self.where}: {self.what}: NVML {self.nvml!r}, nvidia-smi {self.nvidia_smi!r}"


@dataclass(frozen=True)
class OwnProcess:
    """The CUDA process this script started, as /proc knows it."""

    pid: int
    user: str
    name: str


@dataclass(frozen=True)
class Timing:
    """Full-sample times of each backend, in milliseconds."""

    gpus: int
    nvml_p50_ms: float
    nvml_p95_ms: float
    smi_p50_ms: float
    smi_p95_ms: float

    @property
    def nvml_target_ms(self) -> float:
        return NVML_TARGET_MS_PER_8_GPUS * max(1.0, self.gpus / 8)

    @property
    def speedup(self) -> float:
        return self.smi_p50_ms / self.nvml_p50_ms if self.nvml_p50_ms > 0 else float("inf")

    def missed(self) -> list[str]:
        """The targets missed, each as a sentence."""
        missed = []
        if self.nvml_p50_ms > self.nvml_target_ms:
            missed.append(f"NVML sample p50 {self.nvml_p50_ms:.2f} ms is over {self.nvml_target_ms:.1f} ms")
        if self.speedup < SPEEDUP_TARGET:
            missed.append(f"NVML is {self.speedup:.1f}x faster than nvidia-smi, under {SPEEDUP_TARGET:g}x")
        return missed


def compare(nvml: HostSample, smi: HostSample) -> list[Mismatch]:
    """Where the NVML and nvidia-smi samples of the same host disagree beyond the tolerances.

    Args:
        nvml: A sample from `NvmlTelemetry`.
        smi: A sample from `NvidiaSmiTelemetry`, taken just after it.

    Returns:
        Every disagreement; empty when they agree.
    """
    found = []
    if nvml.driver_version != smi.driver_version:
        found.append(Mismatch("driver version", "host", nvml.driver_version, smi.driver_version))
    if [gpu.label for gpu in nvml.gpus] != [gpu.label for gpu in smi.gpus]:
        found.append(Mismatch("GPUs and order", "host", [g.label for g in nvml.gpus], [g.label for g in smi.gpus]))
    # Paired by label, so one GPU missing on one side is one mismatch, not every GPU after it.
    by_label = {gpu.label: gpu for gpu in smi.gpus}
    for a in nvml.gpus:
        if a.label in by_label:
            found.extend(_compare_gpu(a, by_label[a.label]))
    return found


def _compare_gpu(a: GpuSample, b: GpuSample) -> list[Mismatch]:
    where = f"GPU {a.label}"
    found = [
        Mismatch(what, where, getattr(a, field), getattr(b, field))
        for what, field in (("UUID", "uuid"), ("name", "name"), ("state", "lost"), ("MIG mode", "mig_enabled"))
        if getattr(a, field) != getattr(b, field)
    ]
    if not _within(a.memory_total_mib, b.memory_total_mib, lambda x, y: abs(x - y) <= MEMORY_TOLERANCE * max(x, y)):
        found.append(Mismatch("memory total (MiB, 1 %)", where, a.memory_total_mib, b.memory_total_mib))
    if not _within(a.power_limit_w, b.power_limit_w, lambda x, y: abs(x - y) <= POWER_LIMIT_TOLERANCE_W):
        found.append(Mismatch("power limit (W, 1 W)", where, a.power_limit_w, b.power_limit_w))
    if not _within(a.temperature_c, b.temperature_c, lambda x, y: abs(x - y) <= TEMPERATURE_TOLERANCE_C):
        found.append(Mismatch("temperature (°C, 3 °C)", where, a.temperature_c, b.temperature_c))
    if (a.processes_unknown is None) != (b.processes_unknown is None):
        found.append(Mismatch("process list known", where, a.processes_unknown, b.processes_unknown))
    elif a.processes_unknown is None and _pids(a) != _pids(b):
        found.append(Mismatch("PIDs", where, sorted(_pids(a)), sorted(_pids(b))))
    return found


def find_own_process(nvml: HostSample, smi: HostSample, own: OwnProcess) -> list[Mismatch]:
    """Whether both backends list the CUDA process this script started, with its owner and name.

    Args:
        nvml: A sample from `NvmlTelemetry` taken while the process holds its context.
        smi: A sample from `NvidiaSmiTelemetry` taken then too.
        own: The process, as /proc knows it.

    Returns:
        Every way either backend misses or misnames it; empty when both have it right.
    """
    found = []
    a, b = _process(nvml, own.pid), _process(smi, own.pid)
    where = f"own CUDA process {own.pid}"
    if a is None or b is None:
        return [Mismatch("listed on a GPU", where, a is not None, b is not None)]
    if (a.user, b.user) != (own.user, own.user):
        found.append(Mismatch(f"owner (expected {own.user})", where, a.user, b.user))
    # NVML's name is /proc's comm; nvidia-smi prints the program it ran (a path, perhaps with arguments).
    smi_name = Path((b.name or "").split(" ")[0]).name[:15]
    if a.name != own.name or smi_name != own.name:
        found.append(Mismatch(f"name (expected {own.name})", where, a.name, b.name))
    return found


def _process(host: HostSample, pid: int) -> ProcessSample | None:
    return next((p for gpu in host.gpus for p in gpu.processes if p.pid == pid), None)


def _pids(gpu: GpuSample) -> set[int]:
    return {process.pid for process in gpu.processes}


def _within(a: float | None, b: float | None, close: Callable[[float, float], bool]) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return close(a, b)


def report(mismatches: list[Mismatch], timing: Timing | None, holder: str | None) -> tuple[int, str, dict[str, Any]]:
    """The exit status, the readable report and the JSON summary of a run."""
    missed = timing.missed() if timing else ["not timed"]
    lines = [f"CUDA process held with: {holder or 'nothing (no way to hold a context worked)'}"]
    if timing:
        lines.append(
            f"NVML full sample: p50 {timing.nvml_p50_ms:.2f} ms, p95 {timing.nvml_p95_ms:.2f} ms "
            f"(target {timing.nvml_target_ms:.1f} ms for {timing.gpus} GPUs); nvidia-smi -q -x: p50 "
            f"{timing.smi_p50_ms:.1f} ms, p95 {timing.smi_p95_ms:.1f} ms; NVML {timing.speedup:.0f}x faster"
        )
    lines += [f"MISMATCH {m}" for m in mismatches] + [f"MISSED {m}" for m in missed]
    status = 0 if not mismatches and not missed else 1
    lines.append("verify_gpu: all agree, targets met" if status == 0 else "verify_gpu: FAILED")
    summary = {
        "status": status,
        "holder": holder,
        "mismatches": [asdict(m) for m in mismatches],
        "missed": missed,
        "timing": asdict(timing) if timing else None,
    }
    return status, "\n".join(lines), summary


def _times_ms(work: Callable[[], object], repeats: int) -> tuple[float, float]:
    work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 50), percentile(times, 95)


def _hold_cuda() -> tuple[subprocess.Popen[str] | None, str | None, list[str]]:
    errors: list[str] = []
    for name, code in HOLDERS:
        child = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], READY_TIMEOUT_S)
        if ready and child.stdout.readline().strip() == "ready":
            return child, name, errors
        child.kill()
        said = child.communicate()[1].strip().splitlines()
        errors.append(f"{name}: {said[-1] if said else 'no message'}")
    return None, None, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nvidia-smi", default="nvidia-smi")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--nvml-repeats", type=int, default=200)
    parser.add_argument("--smi-repeats", type=int, default=10)
    args = parser.parse_args(argv)
    try:
        from gpubot.telemetry.nvidia_smi import NvidiaSmiTelemetry
        from gpubot.telemetry.nvml import NvmlTelemetry

        nvml = NvmlTelemetry()
        smi = NvidiaSmiTelemetry(args.nvidia_smi)
        first = nvml.sample()
        smi.sample()
    except (ImportError, TelemetryError) as error:
        print(f"verify_gpu: no GPU to verify on here: {getattr(error, 'message', error)}", file=sys.stderr)
        return 2
    if not first.gpus:
        print("verify_gpu: NVML sees no GPU here; nothing to verify.", file=sys.stderr)
        return 2
    child, holder, errors = _hold_cuda()
    mismatches: list[Mismatch] = []
    try:
        a, b = nvml.sample(), smi.sample()
        mismatches += compare(a, b)
        if child is None:
            mismatches.append(Mismatch("a CUDA process could be started", "host", errors, errors))
        else:
            own = OwnProcess(
                pid=child.pid,
                user=pwd.getpwuid(os.getuid()).pw_name,
                name=Path(f"/proc/{child.pid}/comm").read_text().strip(),
            )
            mismatches += find_own_process(a, b, own)
        cards = sum(1 for gpu in a.gpus if gpu.mig_index is None)
        nvml_p50, nvml_p95 = _times_ms(nvml.sample, args.nvml_repeats)
        smi_p50, smi_p95 = _times_ms(smi.sample, args.smi_repeats)
        timing = Timing(cards, nvml_p50, nvml_p95, smi_p50, smi_p95)
    finally:
        if child is not None:
            child.kill()
            child.wait()
        nvml.close()
    status, text, summary = report(mismatches, timing, holder)
    summary["driver_version"] = first.driver_version
    summary["gpus"] = [gpu.label + " " + (gpu.name or "?") for gpu in first.gpus]
    print(text)
    print(json.dumps({"verify_gpu": summary}, default=str))
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2, default=str))
    return status


if __name__ == "__main__":
    sys.exit(main())
