"""The NVML backend against a simulated driver under the real binding, then the real library where there is a GPU.

Each driver profile (`tests/telemetry/nvml_driver.py`) answers as that release does, symbols it lacks
absent, so the binding's own wrappers, struct layouts and errors run here exactly as on a host.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pynvml
import pytest

from gpubot.core.errors import TelemetryError
from gpubot.core.models import GpuSample, ProcessSample
from gpubot.telemetry.host_name import short_hostname
from gpubot.telemetry.nvidia_smi import parse_nvidia_smi_xml
from gpubot.telemetry.nvml import NvmlTelemetry
from tests.telemetry.nvml_driver import (
    DRIVER_NOT_LOADED,
    GPU_IS_LOST,
    NO_PERMISSION,
    NOT_SUPPORTED,
    R450,
    R470,
    R535_54,
    UNKNOWN,
    Gpu,
    Process,
    Profile,
    SimulatedDriver,
    Slice,
    no_library,
)

Simulate = Callable[[SimulatedDriver], SimulatedDriver]
HOST = short_hostname()

CARD_QUERIES = (
    "nvmlDeviceGetName",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetMemoryInfo_v2",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetTemperatureV",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetComputeRunningProcesses_v3",
    "nvmlDeviceGetGraphicsRunningProcesses_v3",
)


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    """A fake /proc: processes not added to it read as gone."""
    return tmp_path / "proc"


def add_process(proc: Path, pid: int, comm: str, uid: int = 0) -> None:
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "comm").write_text(f"{comm}\n")
    (proc / str(pid) / "status").write_text(f"Name:\t{comm}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")


def open_nvml(simulate: Simulate, driver: SimulatedDriver, proc: Path) -> NvmlTelemetry:
    simulate(driver)
    return NvmlTelemetry(proc_root=proc)


def nvml_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gpubot.telemetry.nvml"]


def h100(index: int, **answers: object) -> Gpu:
    return Gpu(uuid=f"GPU-{index:08d}-h100".encode(), **answers)  # type: ignore[arg-type]


# A modern driver: every call answers.


def test_a_healthy_gpu_is_read_in_the_units_the_models_use(simulate: Simulate, proc: Path) -> None:
    gpu = h100(0, used_mib=8300, reserved_mib=479, utilization_pct=85, temperature_c=72, power_mw=450_123)
    telemetry = open_nvml(simulate, SimulatedDriver([gpu]), proc)

    host = telemetry.sample()

    assert telemetry.backend_name == "nvml"
    assert host.hostname == HOST
    assert host.driver_version == "570.124.06"
    assert host.gpus == (
        GpuSample(
            index=0,
            uuid="GPU-00000000-h100",
            name="NVIDIA H100 80GB HBM3",
            memory_total_mib=81559,
            memory_used_mib=8300,  # v2: the 479 MiB the driver reserves is not counted as used
            utilization_gpu_pct=85,
            temperature_c=72,
            power_draw_w=450.123,
            power_limit_w=700.0,
        ),
    )


def test_eight_gpus_with_processes_are_listed_with_owners(simulate: Simulate, proc: Path) -> None:
    add_process(proc, 4242, "python", uid=0)
    add_process(proc, 5151, "torchrun", uid=0)
    gpus = [h100(index, used_mib=1000 * index) for index in range(8)]
    gpus[2].compute = [Process(4242, 8192), Process(5151, 30_000)]
    gpus[7].compute = [Process(4242, 512)]
    gpus[7].graphics = [Process(1234, 22)]
    telemetry = open_nvml(simulate, SimulatedDriver(gpus), proc)

    host = telemetry.sample()

    assert [(g.index, g.uuid, g.memory_used_mib, g.lost) for g in host.gpus] == [
        (index, f"GPU-{index:08d}-h100", 1000 * index, False) for index in range(8)
    ]
    assert host.gpus[2].processes == (
        ProcessSample(pid=4242, name="python", used_memory_mib=8192, user="root"),
        ProcessSample(pid=5151, name="torchrun", used_memory_mib=30_000, user="root"),
    )
    assert host.gpus[7].processes == (
        ProcessSample(pid=4242, name="python", used_memory_mib=512, user="root"),
        ProcessSample(pid=1234, used_memory_mib=22),  # gone from /proc by the time it was read
    )
    assert all(g.processes == () and g.processes_unknown is None for g in host.gpus if g.index not in (2, 7))


def test_processes_from_both_lists_are_merged_by_pid(simulate: Simulate, proc: Path) -> None:
    gpu = h100(
        0,
        compute=[Process(4242, 8192), Process(777, None), Process(5555, None)],
        # 5555 is C+G: only the graphics listing knows its memory. 4242 is listed twice by a racing driver.
        graphics=[Process(1234, 22), Process(5555, 64), Process(4242, 1)],
    )

    (sample,) = open_nvml(simulate, SimulatedDriver([gpu]), proc).sample().gpus

    assert sample.processes == (
        ProcessSample(pid=4242, used_memory_mib=8192),
        ProcessSample(pid=777),  # memory not available (WDDM, MIG without rights)
        ProcessSample(pid=5555, used_memory_mib=64),
        ProcessSample(pid=1234, used_memory_mib=22),
    )
    assert sample.processes_unknown is None


def test_constants_are_read_once_per_handle(simulate: Simulate, proc: Path) -> None:
    driver = SimulatedDriver([h100(0), h100(1)])
    telemetry = open_nvml(simulate, driver, proc)

    for _ in range(3):
        telemetry.sample()

    assert driver.calls.count("nvmlDeviceGetUUID") == 2
    assert driver.calls.count("nvmlDeviceGetName") == 2
    assert driver.calls.count("nvmlDeviceGetHandleByIndex_v2") == 2
    # A card without MIG says so once.
    assert driver.calls.count("nvmlDeviceGetMigMode") == 2
    assert driver.calls.count("nvmlDeviceGetPowerUsage") == 6
    assert driver.inits == 1


def test_the_versioned_temperature_call_is_used_where_the_driver_has_it(simulate: Simulate, proc: Path) -> None:
    driver = SimulatedDriver([h100(0, temperature_c=61)])

    (gpu,) = open_nvml(simulate, driver, proc).sample().gpus

    assert gpu.temperature_c == 61
    # Older bindings have no wrapper for the versioned call; then the deprecated one is all there is.
    used, unused = ("nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature")
    if not hasattr(pynvml, "nvmlDeviceGetTemperatureV"):
        used, unused = unused, used
    assert used in driver.calls
    assert unused not in driver.calls


# Failures: each field on its own, logged once.


def test_a_failing_field_is_none_and_logged_once(
    simulate: Simulate, proc: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gpu = h100(0, fail={"nvmlDeviceGetPowerUsage": NOT_SUPPORTED})
    telemetry = open_nvml(simulate, SimulatedDriver([gpu]), proc)

    with caplog.at_level(logging.WARNING):
        first = telemetry.sample()
        second = telemetry.sample()

    assert first == second
    (sample,) = first.gpus
    assert sample.power_draw_w is None
    assert sample.power_limit_w == 700.0
    assert not sample.lost
    assert nvml_warnings(caplog) == [
        "NVML: power draw of GPU 0 is unavailable (Not Supported); shown as n/a, logged once."
    ]


def test_each_distinct_cause_is_logged_once(simulate: Simulate, proc: Path, caplog: pytest.LogCaptureFixture) -> None:
    gpus = [h100(index, fail={"nvmlDeviceGetPowerUsage": NOT_SUPPORTED}) for index in range(2)]
    telemetry = open_nvml(simulate, SimulatedDriver(gpus), proc)

    with caplog.at_level(logging.WARNING):
        telemetry.sample()
        gpus[0].fail["nvmlDeviceGetPowerUsage"] = NO_PERMISSION
        telemetry.sample()
        telemetry.sample()

    assert nvml_warnings(caplog) == [
        "NVML: power draw of GPU 0 is unavailable (Not Supported); shown as n/a, logged once.",
        "NVML: power draw of GPU 1 is unavailable (Not Supported); shown as n/a, logged once.",
        "NVML: power draw of GPU 0 is unavailable (Insufficient Permissions); shown as n/a, logged once.",
    ]


def test_any_exception_from_the_binding_is_one_field_unknown(
    simulate: Simulate, proc: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    telemetry = open_nvml(simulate, SimulatedDriver([h100(0)]), proc)

    def mismatch(handle: object) -> int:
        # nvidia-ml-py 13 raises this, outside NVMLError, where a driver lacks an unversioned call.
        raise getattr(pynvml, "NVMLLibraryMismatchError", RuntimeError)("Unversioned function called")

    monkeypatch.setattr(pynvml, "nvmlDeviceGetEnforcedPowerLimit", mismatch)
    with caplog.at_level(logging.WARNING):
        (gpu,) = telemetry.sample().gpus
        telemetry.sample()

    assert (gpu.power_limit_w, gpu.power_draw_w, gpu.lost) == (None, 100.0, False)
    assert nvml_warnings(caplog) == [
        "NVML: power limit of GPU 0 is unavailable (Unversioned function called); shown as n/a, logged once."
    ]


def test_a_name_that_is_not_utf8_is_unknown_and_the_rest_is_read(simulate: Simulate, proc: Path) -> None:
    gpu = h100(0, name=b"NVIDIA \xff\xfe Broken", used_mib=1024)

    (sample,) = open_nvml(simulate, SimulatedDriver([gpu]), proc).sample().gpus

    assert (sample.uuid, sample.name, sample.memory_used_mib, sample.lost) == ("GPU-00000000-h100", None, 1024, False)


def test_a_failing_driver_version_leaves_the_gpus_readable(simulate: Simulate, proc: Path) -> None:
    driver = SimulatedDriver([h100(0)])
    telemetry = open_nvml(simulate, driver, proc)
    driver.version_result = UNKNOWN

    host = telemetry.sample()

    assert host.driver_version is None
    assert host.gpus[0].name == "NVIDIA H100 80GB HBM3"


# Lost GPUs: identity kept, the handle taken again afterwards.


def test_a_gpu_lost_mid_sample_keeps_its_identity_and_is_read_again_after_a_reset(
    simulate: Simulate, proc: Path
) -> None:
    lost = h100(0, name=b"NVIDIA A100-SXM4-80GB", used_mib=100)
    healthy = h100(1)
    driver = SimulatedDriver([lost, healthy])
    telemetry = open_nvml(simulate, driver, proc)
    telemetry.sample()

    lost.lost_after_calls = lost.calls + 2  # memory and utilization answer, then it falls off the bus
    calls_before = lost.calls
    gone, ok = telemetry.sample().gpus
    # After "GPU is lost" the backend stops asking that GPU anything for the rest of the sample.
    assert lost.calls - calls_before == 2
    still_gone, _ = telemetry.sample().gpus
    driver.reset(0)
    lost.used_mib = 2048
    back, _ = telemetry.sample().gpus

    assert gone == still_gone == GpuSample(index=0, uuid="GPU-00000000-h100", name="NVIDIA A100-SXM4-80GB", lost=True)
    assert (ok.uuid, ok.lost, ok.memory_total_mib) == ("GPU-00000001-h100", False, 81559)
    # The handle from before the reset is stale: only a new one reads the card.
    assert (back.uuid, back.lost, back.memory_used_mib) == ("GPU-00000000-h100", False, 2048)


def test_a_gpu_lost_before_it_was_ever_read_gets_a_stable_placeholder_uuid(simulate: Simulate, proc: Path) -> None:
    telemetry = open_nvml(simulate, SimulatedDriver([h100(0, lost=True)]), proc)

    (first,) = telemetry.sample().gpus
    (second,) = telemetry.sample().gpus

    assert first == second == GpuSample(index=0, uuid=f"nvml-unknown-{HOST}-0", lost=True)


def test_a_gpu_whose_every_field_fails_is_lost(simulate: Simulate, proc: Path) -> None:
    broken = h100(0, fail=dict.fromkeys(CARD_QUERIES, UNKNOWN))

    gone, ok = open_nvml(simulate, SimulatedDriver([broken, h100(1)]), proc).sample().gpus

    assert gone.lost
    assert not ok.lost


def test_a_gpu_without_its_uuid_is_unreadable_never_claimable(simulate: Simulate, proc: Path) -> None:
    failing = dict.fromkeys(CARD_QUERIES, NOT_SUPPORTED)
    del failing["nvmlDeviceGetTemperatureV"], failing["nvmlDeviceGetTemperature"]
    failing["nvmlDeviceGetUUID"] = UNKNOWN
    telemetry = open_nvml(simulate, SimulatedDriver([h100(0, temperature_c=72, fail=failing)]), proc)

    (gpu,) = telemetry.sample().gpus

    assert gpu == GpuSample(
        index=0,
        uuid=f"nvml-unknown-{HOST}-0",
        temperature_c=72,
        unreadable="its UUID could not be read (Unknown Error)",
        processes_unknown="the driver does not list processes here",
    )


def test_a_gpu_without_a_handle_is_lost_until_one_can_be_had(simulate: Simulate, proc: Path) -> None:
    driver = SimulatedDriver([h100(0), h100(1)])
    driver.handle_results[1] = UNKNOWN
    telemetry = open_nvml(simulate, driver, proc)

    first = telemetry.sample()
    del driver.handle_results[1]
    second = telemetry.sample()

    assert [gpu.lost for gpu in first.gpus] == [False, True]
    assert [(gpu.uuid, gpu.lost) for gpu in second.gpus] == [("GPU-00000000-h100", False), ("GPU-00000001-h100", False)]


def test_a_lost_gpu_during_the_v2_memory_call_is_not_mistaken_for_missing_v2(simulate: Simulate, proc: Path) -> None:
    gpu = h100(0)
    telemetry = open_nvml(simulate, SimulatedDriver([gpu]), proc)
    telemetry.sample()
    gpu.fail["nvmlDeviceGetMemoryInfo_v2"] = GPU_IS_LOST

    (sample,) = telemetry.sample().gpus

    assert sample == GpuSample(index=0, uuid="GPU-00000000-h100", name="NVIDIA H100 80GB HBM3", lost=True)


# No permission is not lost.


def test_a_gpu_refusing_its_uuid_is_unreadable_not_lost(simulate: Simulate, proc: Path) -> None:
    gpu = h100(0, used_mib=300, fail={"nvmlDeviceGetUUID": NO_PERMISSION})

    (sample,) = open_nvml(simulate, SimulatedDriver([gpu]), proc).sample().gpus

    assert (sample.uuid, sample.unreadable, sample.lost) == (f"nvml-unknown-{HOST}-0", "no permission", False)
    assert (sample.name, sample.memory_used_mib) == ("NVIDIA H100 80GB HBM3", 300)


def test_a_gpu_refusing_everything_is_unreadable_not_lost(simulate: Simulate, proc: Path) -> None:
    driver = SimulatedDriver([h100(0, fail=dict.fromkeys(CARD_QUERIES, NO_PERMISSION)), h100(1)])
    driver.handle_results[1] = NO_PERMISSION

    first, second = open_nvml(simulate, driver, proc).sample().gpus

    assert first == GpuSample(index=0, uuid=f"nvml-unknown-{HOST}-0", unreadable="no permission")
    assert second == GpuSample(index=1, uuid=f"nvml-unknown-{HOST}-1", unreadable="no permission")


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (NO_PERMISSION, "no permission to list processes"),
        (NOT_SUPPORTED, "the driver does not list processes here"),
        (UNKNOWN, "the process list could not be read (Unknown Error)"),
    ],
)
def test_a_refused_process_list_is_unknown_never_idle(simulate: Simulate, proc: Path, code: int, reason: str) -> None:
    gpu = h100(0, graphics=[Process(1234, 22)], fail={"nvmlDeviceGetComputeRunningProcesses_v3": code})

    (sample,) = open_nvml(simulate, SimulatedDriver([gpu]), proc).sample().gpus

    assert sample.processes_unknown == reason
    assert [p.pid for p in sample.processes] == [1234]  # what could be read is still shown
    assert not sample.lost


def test_a_card_that_cannot_list_graphics_processes_lists_its_compute_ones(simulate: Simulate, proc: Path) -> None:
    gpu = h100(0, compute=[Process(4242, 100)], fail={"nvmlDeviceGetGraphicsRunningProcesses_v3": NOT_SUPPORTED})

    (sample,) = open_nvml(simulate, SimulatedDriver([gpu]), proc).sample().gpus

    assert ([p.pid for p in sample.processes], sample.processes_unknown) == ([4242], None)


# Older drivers: versioned calls they lack are simply absent.


def test_a_470_driver_lists_processes_through_v2_and_memory_through_v1(simulate: Simulate, proc: Path) -> None:
    add_process(proc, 4242, "python")
    gpu = Gpu(
        uuid=b"GPU-v100",
        name=b"Tesla V100-SXM2-16GB",
        total_mib=16160,
        used_mib=8300,
        reserved_mib=479,
        temperature_c=55,
        compute=[Process(4242, 8192), Process(5151, 900)],
    )
    driver = SimulatedDriver([gpu], R470)
    telemetry = open_nvml(simulate, driver, proc)

    first = telemetry.sample()
    second = telemetry.sample()

    assert first == second
    assert first.driver_version == "470.82.01"
    assert first.gpus == (
        GpuSample(
            index=0,
            uuid="GPU-v100",
            name="Tesla V100-SXM2-16GB",
            memory_total_mib=16160,
            memory_used_mib=8300 + 479,  # v1 counts the reserved part as used; nothing better exists
            utilization_gpu_pct=0,
            temperature_c=55,
            power_draw_w=100.0,
            power_limit_w=700.0,
            processes=(
                ProcessSample(pid=4242, name="python", used_memory_mib=8192, user="root"),
                ProcessSample(pid=5151, used_memory_mib=900),
            ),
        ),
    )
    assert driver.calls.count("nvmlDeviceGetComputeRunningProcesses_v2") == 4  # size, then fill; twice
    # The binding's own unversioned wrapper cannot read this driver: that is why the backend does not use it.
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises((pynvml.NVMLError, getattr(pynvml, "NVMLLibraryMismatchError", pynvml.NVMLError))):
        pynvml.nvmlDeviceGetComputeRunningProcesses(handle)


def test_a_450_driver_lists_processes_through_the_unversioned_v1_call(simulate: Simulate, proc: Path) -> None:
    gpu = h100(0, compute=[Process(4242, 8192), Process(5151, None)], graphics=[Process(1234, 22)])

    (sample,) = open_nvml(simulate, SimulatedDriver([gpu], R450), proc).sample().gpus

    assert sample.processes == (
        ProcessSample(pid=4242, used_memory_mib=8192),
        ProcessSample(pid=5151),
        ProcessSample(pid=1234, used_memory_mib=22),
    )
    assert sample.processes_unknown is None


def test_a_535_54_driver_writing_wide_process_entries_is_read_correctly(simulate: Simulate, proc: Path) -> None:
    gpu = h100(0, compute=[Process(4242, 8192), Process(5151, 900), Process(6060, 12)], temperature_c=66)
    driver = SimulatedDriver([gpu], R535_54)

    (sample,) = open_nvml(simulate, driver, proc).sample().gpus

    assert sample.processes == (
        ProcessSample(pid=4242, used_memory_mib=8192),
        ProcessSample(pid=5151, used_memory_mib=900),
        ProcessSample(pid=6060, used_memory_mib=12),
    )
    assert sample.processes_unknown is None
    assert sample.temperature_c == 66  # no versioned temperature call on this driver: the old one answers
    # What the binding's own wrapper makes of the same entries: a PID 0 and a nonsense size.
    listed = pynvml.nvmlDeviceGetComputeRunningProcesses(pynvml.nvmlDeviceGetHandleByIndex(0))
    assert [p.pid for p in listed][:2] == [4242, 0]


def test_wide_process_entries_from_a_driver_of_unknown_release_are_unknown_never_garbage(
    simulate: Simulate, proc: Path
) -> None:
    driver = SimulatedDriver([h100(0, compute=[Process(4242, 8192), Process(5151, 900)])], R535_54)
    driver.version_result = UNKNOWN  # without the release, the backend cannot know the layout

    (sample,) = open_nvml(simulate, driver, proc).sample().gpus

    assert sample.processes == ()
    assert sample.processes_unknown == "the driver's process list is malformed (PID 0)"


# MIG: each slice is a sample of its own, right after its card.


def a100_mig(index: int) -> Gpu:
    return Gpu(
        uuid=f"GPU-{index:08d}-a100".encode(),
        name=b"NVIDIA A100-SXM4-40GB",
        total_mib=40960,
        used_mib=9000,
        mig_enabled=True,
        mig=[
            Slice(
                uuid=b"MIG-11111111-1111-1111-1111-111111111111",
                name=b"NVIDIA A100-SXM4-40GB MIG 1g.5gb",
                total_mib=4864,
                used_mib=1000,
                gpu_instance=7,
                compute=[Process(4242, 900, gpu_instance=7, compute_instance=0)],
            ),
            None,
            Slice(
                uuid=b"MIG-33333333-3333-3333-3333-333333333333",
                name=b"NVIDIA A100-SXM4-40GB MIG 3g.20gb",
                total_mib=19968,
                used_mib=8000,
                gpu_instance=2,
                compute=[
                    Process(5151, 6000, gpu_instance=2, compute_instance=0),
                    Process(6060, 2000, gpu_instance=2, compute_instance=0),
                ],
            ),
            None,
            None,
            None,
            None,
        ],
    )


def test_a_mig_card_lists_its_slices_with_their_processes(simulate: Simulate, proc: Path) -> None:
    add_process(proc, 4242, "python")
    driver = SimulatedDriver([a100_mig(0), h100(1)])
    telemetry = open_nvml(simulate, driver, proc)

    card, small, large, other = telemetry.sample().gpus

    python = ProcessSample(pid=4242, name="python", used_memory_mib=900, user="root")
    assert small == GpuSample(
        index=0,
        uuid="MIG-11111111-1111-1111-1111-111111111111",
        name="NVIDIA A100-SXM4-40GB MIG 1g.5gb",
        memory_total_mib=4864,
        memory_used_mib=1000,
        processes=(python,),
        mig_index=0,
        parent_uuid="GPU-00000000-a100",
        mig_profile="1g.5gb",
    )
    assert (large.label, large.uuid, large.mig_profile) == (
        "0.2",
        "MIG-33333333-3333-3333-3333-333333333333",
        "3g.20gb",
    )
    assert [(p.pid, p.used_memory_mib) for p in large.processes] == [(5151, 6000), (6060, 2000)]
    assert large.utilization_gpu_pct is None
    assert card == GpuSample(
        index=0,
        uuid="GPU-00000000-a100",
        name="NVIDIA A100-SXM4-40GB",
        memory_total_mib=40960,
        memory_used_mib=9000,
        temperature_c=40,
        power_draw_w=100.0,
        power_limit_w=700.0,
        processes=(python, *large.processes),
        mig_enabled=True,
    )
    assert (other.label, other.mig_enabled, other.mig_index) == ("1", False, None)


def test_slices_created_and_destroyed_at_run_time_are_seen(simulate: Simulate, proc: Path) -> None:
    gpu = a100_mig(0)
    telemetry = open_nvml(simulate, SimulatedDriver([gpu]), proc)
    assert [g.label for g in telemetry.sample().gpus] == ["0", "0.0", "0.2"]
    assert gpu.mig is not None

    gpu.mig[0], gpu.mig[4] = None, Slice(uuid=b"MIG-55555555", name=b"NVIDIA A100-SXM4-40GB MIG 2g.10gb")

    assert [(g.label, g.mig_profile) for g in telemetry.sample().gpus] == [
        ("0", None),
        ("0.2", "3g.20gb"),
        ("0.4", "2g.10gb"),
    ]


def test_a_slice_refusing_its_process_list_makes_the_card_list_unknown(simulate: Simulate, proc: Path) -> None:
    gpu = a100_mig(0)
    assert gpu.mig is not None and gpu.mig[2] is not None
    gpu.mig[2].fail["nvmlDeviceGetComputeRunningProcesses_v3"] = NO_PERMISSION

    card, small, large = open_nvml(simulate, SimulatedDriver([gpu]), proc).sample().gpus

    assert (small.processes_unknown, [p.pid for p in small.processes]) == (None, [4242])
    assert (large.processes_unknown, large.processes) == ("no permission to list processes", ())
    assert card.processes_unknown == "no permission to list processes"
    assert [p.pid for p in card.processes] == [4242]


def test_a_lost_mig_card_keeps_its_slices_identities(simulate: Simulate, proc: Path) -> None:
    gpu = a100_mig(0)
    telemetry = open_nvml(simulate, SimulatedDriver([gpu]), proc)
    telemetry.sample()
    gpu.lost = True

    card, small, large = telemetry.sample().gpus

    assert (card.uuid, card.lost, card.mig_enabled) == ("GPU-00000000-a100", True, True)
    assert [(s.label, s.uuid, s.lost, s.parent_uuid) for s in (small, large)] == [
        ("0.0", "MIG-11111111-1111-1111-1111-111111111111", True, "GPU-00000000-a100"),
        ("0.2", "MIG-33333333-3333-3333-3333-333333333333", True, "GPU-00000000-a100"),
    ]


# Enumeration, start and end.


def test_a_gpu_that_appears_is_enumerated(simulate: Simulate, proc: Path) -> None:
    driver = SimulatedDriver([h100(0)])
    telemetry = open_nvml(simulate, driver, proc)
    assert len(telemetry.sample().gpus) == 1

    driver.gpus.append(h100(1))

    assert [gpu.uuid for gpu in telemetry.sample().gpus] == ["GPU-00000000-h100", "GPU-00000001-h100"]


def test_a_failing_device_count_keeps_the_gpus_known(simulate: Simulate, proc: Path) -> None:
    driver = SimulatedDriver([h100(0)])
    telemetry = open_nvml(simulate, driver, proc)

    driver.count_result = UNKNOWN

    assert [gpu.uuid for gpu in telemetry.sample().gpus] == ["GPU-00000000-h100"]


def test_a_library_that_does_not_load_is_a_telemetry_error(monkeypatch: pytest.MonkeyPatch, proc: Path) -> None:
    no_library(monkeypatch)

    with pytest.raises(TelemetryError, match="NVML could not be initialised: NVML Shared Library Not Found"):
        NvmlTelemetry(proc_root=proc)


def test_a_driver_that_is_not_loaded_is_a_telemetry_error(simulate: Simulate, proc: Path) -> None:
    with pytest.raises(TelemetryError, match="NVML could not be initialised: Driver Not Loaded"):
        open_nvml(simulate, SimulatedDriver([], init_result=DRIVER_NOT_LOADED), proc)


def test_a_failed_count_at_start_shuts_nvml_down_again(simulate: Simulate, proc: Path) -> None:
    driver = SimulatedDriver([h100(0)])
    driver.count_result = UNKNOWN

    with pytest.raises(TelemetryError, match="could not count the GPUs"):
        open_nvml(simulate, driver, proc)

    assert (driver.inits, driver.shutdowns) == (1, 1)


def test_close_shuts_nvml_down_once_and_ends_sampling(simulate: Simulate, proc: Path) -> None:
    driver = SimulatedDriver([h100(0)])
    telemetry = open_nvml(simulate, driver, proc)

    telemetry.close()
    telemetry.close()

    assert (driver.inits, driver.shutdowns) == (1, 1)
    with pytest.raises(TelemetryError, match="closed"):
        telemetry.sample()


def test_a_profile_without_a_symbol_really_lacks_it(simulate: Simulate, proc: Path) -> None:
    simulate(SimulatedDriver([h100(0)], Profile("999.0", absent=frozenset({"nvmlDeviceGetPowerUsage"}))))
    pynvml.nvmlInit()
    with pytest.raises(pynvml.NVMLError_FunctionNotFound):
        pynvml.nvmlDeviceGetPowerUsage(pynvml.nvmlDeviceGetHandleByIndex(0))
    pynvml.nvmlShutdown()


# Against the real library. Here (no driver) these skip; on a GPU host they check what a person would.


@pytest.fixture
def real_nvml() -> Iterator[NvmlTelemetry]:
    try:
        telemetry = NvmlTelemetry()
    except TelemetryError as error:
        pytest.skip(f"no usable NVML here: {error.message}")
    yield telemetry
    telemetry.close()


@pytest.mark.nvml_hardware
def test_real_gpus_report_what_a_listing_needs(real_nvml: NvmlTelemetry) -> None:
    first = real_nvml.sample()
    second = real_nvml.sample()

    assert first.hostname == short_hostname()
    assert first.driver_version
    assert first.gpus, "NVML initialised but found no GPU"
    # The same GPUs, in the same order, with the same identities, poll after poll.
    assert [(g.index, g.uuid, g.name) for g in first.gpus] == [(g.index, g.uuid, g.name) for g in second.gpus]
    cards = [g for g in first.gpus if g.mig_index is None]
    assert [g.index for g in cards] == list(range(len(cards)))
    assert len({g.uuid for g in first.gpus}) == len(first.gpus)
    for gpu in first.gpus + second.gpus:
        assert not gpu.lost, f"GPU {gpu.index} reads as lost"
        assert gpu.name
        assert gpu.uuid.startswith("GPU-" if gpu.mig_index is None else "MIG-")
        assert gpu.unreadable is None, f"GPU {gpu.label} is unreadable: {gpu.unreadable}"
        assert gpu.memory_total_mib is not None
        assert gpu.memory_total_mib > 0
        assert gpu.memory_used_mib is not None
        assert 0 <= gpu.memory_used_mib <= gpu.memory_total_mib
        assert gpu.utilization_gpu_pct is None or 0 <= gpu.utilization_gpu_pct <= 100
        assert gpu.temperature_c is None or 0 < gpu.temperature_c < 130
        assert gpu.power_draw_w is None or 0 <= gpu.power_draw_w < 2000
        assert gpu.power_limit_w is None or 0 < gpu.power_limit_w < 2000
        for proc in gpu.processes:
            assert proc.pid > 0
            assert proc.used_memory_mib is None or 0 <= proc.used_memory_mib <= gpu.memory_total_mib


@pytest.mark.nvml_hardware
def test_real_nvml_agrees_with_nvidia_smi(real_nvml: NvmlTelemetry) -> None:
    executable = shutil.which("nvidia-smi")
    if executable is None:
        pytest.skip("nvidia-smi is not installed")
    nvml_host = real_nvml.sample()
    xml = subprocess.run([executable, "-q", "-x"], capture_output=True, text=True, check=True, timeout=30).stdout
    smi_host = parse_nvidia_smi_xml(xml, hostname=nvml_host.hostname)

    assert nvml_host.driver_version == smi_host.driver_version
    by_uuid = {gpu.uuid: gpu for gpu in smi_host.gpus if gpu.mig_index is None}
    nvml_cards = [gpu for gpu in nvml_host.gpus if gpu.mig_index is None]
    assert set(by_uuid) == {gpu.uuid for gpu in nvml_cards}
    for gpu in nvml_cards:
        assert gpu.name == by_uuid[gpu.uuid].name
        assert gpu.memory_total_mib == by_uuid[gpu.uuid].memory_total_mib


@pytest.mark.nvml_hardware
def test_real_nvml_sees_this_process_when_it_uses_a_gpu(real_nvml: NvmlTelemetry) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch cannot reach a GPU")
    tensor = torch.zeros((64, 1024, 1024), device="cuda:0")  # 256 MiB: this process now has a CUDA context

    pids = {proc.pid: proc for gpu in real_nvml.sample().gpus for proc in gpu.processes}
    del tensor

    # Inside a container NVML may report host PIDs; then this process cannot be matched and that is fine.
    if os.getpid() not in pids:
        pytest.skip("NVML lists host PIDs here (PID namespace)")
    mine = pids[os.getpid()]
    assert mine.name
    assert mine.user
