"""`bench/verify_gpu.py`'s comparison and verdict, on samples made here: it can only run where a GPU is."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import ModuleType

import pytest

from gpubot.core.models import GpuSample, HostSample, ProcessSample

REPO = Path(__file__).resolve().parents[2]
CARD = "GPU-513536b6-7d19-9063-b049-1e69664bb298"
OWN_PID = 4242


@pytest.fixture
def verify(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """`verify_gpu`, imported as it runs (bench/ on the path)."""
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import verify_gpu

    return verify_gpu


def host() -> HostSample:
    """A card in MIG mode with one slice, and a plain card, as both backends should report them."""
    own = ProcessSample(pid=OWN_PID, name="python3", used_memory_mib=64, user="alice")
    return HostSample(
        hostname="box",
        driver_version="550.54.15",
        gpus=(
            GpuSample(
                index=0,
                uuid=CARD,
                name="NVIDIA A100-SXM4-80GB",
                memory_total_mib=81920,
                temperature_c=40,
                power_limit_w=400.0,
                mig_enabled=True,
                processes=(own,),
            ),
            GpuSample(
                index=0,
                uuid="MIG-1",
                name="NVIDIA A100-SXM4-80GB MIG 1g.10gb",
                memory_total_mib=9728,
                mig_index=0,
                parent_uuid=CARD,
                mig_profile="1g.10gb",
                processes=(own,),
            ),
            GpuSample(
                index=1,
                uuid="GPU-2",
                name="NVIDIA H100 80GB HBM3",
                memory_total_mib=81559,
                temperature_c=35,
                power_limit_w=700.0,
            ),
        ),
    )


def change(sample: HostSample, position: int, **fields: object) -> HostSample:
    gpus = list(sample.gpus)
    gpus[position] = dataclasses.replace(gpus[position], **fields)
    return dataclasses.replace(sample, gpus=tuple(gpus))


def test_two_samples_that_agree_within_the_tolerances_match(verify: ModuleType) -> None:
    smi = change(host(), 0, memory_total_mib=81920 - 800, temperature_c=43, power_limit_w=400.9)
    smi = change(smi, 0, processes=(ProcessSample(pid=OWN_PID, name="/usr/bin/python3 -c …", user="alice"),))
    smi = change(smi, 1, processes=smi.gpus[0].processes)

    assert verify.compare(host(), smi) == []
    assert verify.find_own_process(host(), smi, verify.OwnProcess(OWN_PID, "alice", "python3")) == []


@pytest.mark.parametrize(
    ("position", "fields", "what"),
    [
        (0, {"uuid": "GPU-other"}, "UUID"),
        (2, {"name": "NVIDIA H200"}, "name"),
        (0, {"memory_total_mib": 81920 - 900}, "memory total (MiB, 1 %)"),
        (2, {"memory_total_mib": None}, "memory total (MiB, 1 %)"),
        (2, {"power_limit_w": 701.5}, "power limit (W, 1 W)"),
        (2, {"temperature_c": 39}, "temperature (°C, 3 °C)"),
        (2, {"processes": (ProcessSample(pid=99),)}, "PIDs"),
        (1, {"processes": ()}, "PIDs"),  # the slice's own list
        (2, {"processes_unknown": "no permission"}, "process list known"),
        (1, {"mig_enabled": True}, "MIG mode"),
        (2, {"lost": True}, "state"),
    ],
)
def test_each_kind_of_disagreement_is_found(verify: ModuleType, position: int, fields: dict, what: str) -> None:
    (found,) = verify.compare(host(), change(host(), position, **fields))

    assert found.what == what
    assert found.where == f"GPU {host().gpus[position].label}"


def test_a_different_driver_count_or_order_is_found(verify: ModuleType) -> None:
    nvml = host()
    assert [m.what for m in verify.compare(nvml, dataclasses.replace(nvml, driver_version="550.54.14"))] == [
        "driver version"
    ]
    fewer = dataclasses.replace(nvml, gpus=nvml.gpus[:2])
    assert [m.what for m in verify.compare(nvml, fewer)] == ["GPUs and order"]
    swapped = dataclasses.replace(nvml, gpus=(nvml.gpus[2], nvml.gpus[0], nvml.gpus[1]))
    assert [m.what for m in verify.compare(nvml, swapped)] == ["GPUs and order"]


@pytest.mark.parametrize(
    ("smi_process", "what"),
    [
        (None, "listed on a GPU"),
        (ProcessSample(pid=OWN_PID, name="python3", user="nobody"), "owner (expected alice)"),
        (ProcessSample(pid=OWN_PID, name="python3", user=None), "owner (expected alice)"),
        (ProcessSample(pid=OWN_PID, name="bash", user="alice"), "name (expected python3)"),
    ],
)
def test_the_own_cuda_process_missing_or_misnamed_is_found(
    verify: ModuleType, smi_process: ProcessSample | None, what: str
) -> None:
    processes = () if smi_process is None else (smi_process,)
    smi = change(change(host(), 0, processes=processes), 1, processes=processes)

    (found,) = verify.find_own_process(host(), smi, verify.OwnProcess(OWN_PID, "alice", "python3"))

    assert found.what == what


def test_the_verdict_fails_on_a_mismatch_or_a_missed_target(verify: ModuleType) -> None:
    fast = verify.Timing(gpus=8, nvml_p50_ms=4.0, nvml_p95_ms=6.0, smi_p50_ms=400.0, smi_p95_ms=450.0)
    assert verify.report([], fast, "libcuda")[0] == 0

    slow = dataclasses.replace(fast, nvml_p50_ms=12.0)
    status, text, summary = verify.report([], slow, "libcuda")
    assert status == 1 and "MISSED NVML sample p50 12.00 ms is over 10.0 ms" in text
    close = dataclasses.replace(fast, smi_p50_ms=60.0)
    assert "under 20x" in verify.report([], close, "libcuda")[1]
    # 16 GPUs get twice the time.
    assert verify.report([], dataclasses.replace(slow, gpus=16), "libcuda")[0] == 0

    mismatch = verify.Mismatch("UUID", "GPU 0", "GPU-a", "GPU-b")
    status, text, summary = verify.report([mismatch], fast, "libcuda")
    assert status == 1 and "MISMATCH GPU 0: UUID: NVML 'GPU-a', nvidia-smi 'GPU-b'" in text
    assert summary["mismatches"] == [{"what": "UUID", "where": "GPU 0", "nvml": "GPU-a", "nvidia_smi": "GPU-b"}]


def test_without_a_gpu_it_exits_2_saying_so(verify: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "no-nvidia-smi"

    assert verify.main(["--nvidia-smi", str(missing)]) == 2
    assert "no GPU to verify on here" in capsys.readouterr().err
