"""The NVML backend: its choke point against a stand-in module, then the real library where there is a GPU."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpubot.core.errors import TelemetryError
from gpubot.core.models import GpuSample, ProcessSample
from gpubot.telemetry.nvidia_smi import parse_nvidia_smi_xml
from gpubot.telemetry.nvml import NvmlTelemetry
from tests.telemetry.fake_nvml import (
    MIB,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_NOT_SUPPORTED,
    NVML_ERROR_UNKNOWN,
    FakeDevice,
    FakeNvml,
    OldBindingsNvml,
    process,
)

ALL_QUERIES = (
    "nvmlDeviceGetName",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetComputeRunningProcesses",
    "nvmlDeviceGetGraphicsRunningProcesses",
)


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    """An empty fake /proc: processes not added to it read as gone."""
    return tmp_path / "proc"


def open_nvml(nvml: FakeNvml, proc: Path) -> NvmlTelemetry:
    return NvmlTelemetry(nvml=nvml, proc_root=proc)


def nvml_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gpubot.telemetry.nvml"]


def test_a_healthy_gpu_is_read_in_the_units_the_models_use(proc: Path) -> None:
    device = FakeDevice(uuid="GPU-aaaa", total_bytes=81559 * MIB, used_bytes=8300 * MIB, power_mw=450_123)
    telemetry = open_nvml(FakeNvml([device]), proc)

    host = telemetry.sample()

    assert telemetry.backend_name == "nvml"
    assert host.hostname == socket.gethostname()
    assert host.driver_version == "550.54.15"
    assert host.gpus == (
        GpuSample(
            index=0,
            uuid="GPU-aaaa",
            name="NVIDIA H100 80GB HBM3",
            memory_total_mib=81559,
            memory_used_mib=8300,  # v2: the 479 MiB the driver reserves is not counted as used
            utilization_gpu_pct=85,
            temperature_c=72,
            power_draw_w=450.123,
            power_limit_w=700.0,
        ),
    )


def test_a_failing_field_is_none_and_logged_once(proc: Path, caplog: pytest.LogCaptureFixture) -> None:
    device = FakeDevice(fail={"nvmlDeviceGetPowerUsage": NVML_ERROR_NOT_SUPPORTED})
    telemetry = open_nvml(FakeNvml([device]), proc)

    with caplog.at_level(logging.WARNING):
        first = telemetry.sample()
        second = telemetry.sample()

    assert first == second
    (gpu,) = first.gpus
    assert gpu.power_draw_w is None
    assert gpu.power_limit_w == 700.0
    assert not gpu.lost
    assert nvml_warnings(caplog) == [
        "NVML: power draw of GPU 0 is unavailable (Not Supported); shown as n/a, logged once."
    ]


def test_each_distinct_cause_is_logged_once(proc: Path, caplog: pytest.LogCaptureFixture) -> None:
    devices = [
        FakeDevice(uuid="GPU-0", fail={"nvmlDeviceGetTemperature": NVML_ERROR_NOT_SUPPORTED}),
        FakeDevice(uuid="GPU-1", fail={"nvmlDeviceGetTemperature": NVML_ERROR_NOT_SUPPORTED}),
    ]
    telemetry = open_nvml(FakeNvml(devices), proc)

    with caplog.at_level(logging.WARNING):
        telemetry.sample()
        devices[0].fail["nvmlDeviceGetTemperature"] = NVML_ERROR_NO_PERMISSION
        telemetry.sample()
        telemetry.sample()

    assert nvml_warnings(caplog) == [
        "NVML: temperature of GPU 0 is unavailable (Not Supported); shown as n/a, logged once.",
        "NVML: temperature of GPU 1 is unavailable (Not Supported); shown as n/a, logged once.",
        "NVML: temperature of GPU 0 is unavailable (Insufficient Permissions); shown as n/a, logged once.",
    ]


def test_a_lost_gpu_is_marked_and_the_others_are_read(proc: Path) -> None:
    lost = FakeDevice(uuid="GPU-lost", name="NVIDIA A100-SXM4-80GB")
    healthy = FakeDevice(uuid="GPU-ok")
    nvml = FakeNvml([lost, healthy])
    telemetry = open_nvml(nvml, proc)
    telemetry.sample()

    lost.lost = True
    calls_before = lost.calls
    gone, ok = telemetry.sample().gpus

    # It keeps the identity it had, so its claim still points at it, and reports nothing else.
    assert gone == GpuSample(index=0, uuid="GPU-lost", name="NVIDIA A100-SXM4-80GB", lost=True)
    assert ok.uuid == "GPU-ok"
    assert not ok.lost
    assert ok.memory_total_mib == 81559
    # After "GPU is lost" the backend stops asking that GPU anything for the rest of the sample.
    assert lost.calls - calls_before == 1


def test_a_gpu_lost_before_it_was_ever_read_gets_a_stable_placeholder_uuid(proc: Path) -> None:
    telemetry = open_nvml(FakeNvml([FakeDevice(lost=True)]), proc)

    (first,) = telemetry.sample().gpus
    (second,) = telemetry.sample().gpus

    assert first == second == GpuSample(index=0, uuid=f"nvml-unknown-{socket.gethostname()}-0", lost=True)


def test_a_gpu_whose_every_field_fails_is_lost(proc: Path) -> None:
    device = FakeDevice(fail=dict.fromkeys(ALL_QUERIES, NVML_ERROR_UNKNOWN))
    telemetry = open_nvml(FakeNvml([device, FakeDevice(uuid="GPU-ok")]), proc)

    broken, ok = telemetry.sample().gpus

    assert broken.lost
    assert not ok.lost


def test_a_gpu_with_some_fields_left_is_not_lost(proc: Path) -> None:
    failing = dict.fromkeys(ALL_QUERIES, NVML_ERROR_NOT_SUPPORTED)
    del failing["nvmlDeviceGetTemperature"]
    telemetry = open_nvml(FakeNvml([FakeDevice(uuid="GPU-hot", fail=failing)]), proc)

    (gpu,) = telemetry.sample().gpus

    assert gpu == GpuSample(index=0, uuid=f"nvml-unknown-{socket.gethostname()}-0", temperature_c=72)


def test_a_gpu_without_a_handle_is_lost_until_one_can_be_had(proc: Path) -> None:
    nvml = FakeNvml([FakeDevice(uuid="GPU-0"), FakeDevice(uuid="GPU-1")])
    nvml.handle_errors[1] = NVML_ERROR_UNKNOWN
    telemetry = open_nvml(nvml, proc)

    first = telemetry.sample()
    del nvml.handle_errors[1]
    second = telemetry.sample()

    assert [gpu.lost for gpu in first.gpus] == [False, True]
    assert [(gpu.uuid, gpu.lost) for gpu in second.gpus] == [("GPU-0", False), ("GPU-1", False)]


def test_old_bindings_returning_bytes_are_decoded(proc: Path) -> None:
    device = FakeDevice(name=b"Tesla V100-SXM2-16GB", uuid=b"GPU-bytes")
    telemetry = open_nvml(FakeNvml([device], driver_version=b"470.82.01"), proc)

    host = telemetry.sample()

    assert host.driver_version == "470.82.01"
    assert (host.gpus[0].name, host.gpus[0].uuid) == ("Tesla V100-SXM2-16GB", "GPU-bytes")


def test_a_driver_without_v2_memory_falls_back_to_v1_and_stops_asking(proc: Path) -> None:
    nvml = FakeNvml([FakeDevice(memory_v2=False, used_bytes=8300 * MIB, reserved_bytes=479 * MIB)])
    telemetry = open_nvml(nvml, proc)

    first = telemetry.sample()
    telemetry.sample()

    (gpu,) = first.gpus
    assert gpu.memory_used_mib == 8300 + 479  # v1 counts the reserved part as used; nothing better exists
    assert gpu.memory_total_mib == 81559
    assert nvml.memory_v2_calls == 1


def test_bindings_without_the_version_argument_use_v1(proc: Path) -> None:
    telemetry = open_nvml(OldBindingsNvml([FakeDevice(used_bytes=100 * MIB, reserved_bytes=400 * MIB)]), proc)

    (gpu,) = telemetry.sample().gpus

    assert gpu.memory_used_mib == 500


def test_a_lost_gpu_during_the_v2_memory_call_is_not_mistaken_for_missing_v2(proc: Path) -> None:
    device = FakeDevice(uuid="GPU-x")
    telemetry = open_nvml(FakeNvml([device]), proc)
    device.fail["nvmlDeviceGetMemoryInfo"] = NVML_ERROR_GPU_IS_LOST

    (gpu,) = telemetry.sample().gpus

    assert gpu == GpuSample(index=0, uuid="GPU-x", name="NVIDIA H100 80GB HBM3", lost=True)


def test_processes_from_both_lists_are_merged_by_pid_with_names_and_owners(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    for pid, comm in ((4242, "python"), (1234, "Xorg")):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(f"{comm}\n")
        (proc / str(pid) / "status").write_text("Uid:\t0\t0\t0\t0\n")
    device = FakeDevice(
        compute=[process(4242, 8192), process(777, None), process(5555, None)],
        # 5555 is C+G: only the graphics listing knows its memory. 4242 is listed twice by a racing driver.
        graphics=[process(1234, 22), process(5555, 64), process(4242, 1)],
    )
    telemetry = open_nvml(FakeNvml([device]), proc)

    (gpu,) = telemetry.sample().gpus

    assert gpu.processes == (
        ProcessSample(pid=4242, name="python", used_memory_mib=8192, user="root"),
        ProcessSample(pid=777),  # exited before /proc was read; memory unknown (WDDM, MIG without rights)
        ProcessSample(pid=5555, used_memory_mib=64),
        ProcessSample(pid=1234, name="Xorg", used_memory_mib=22, user="root"),
    )


def test_one_failing_process_list_keeps_the_other(proc: Path) -> None:
    device = FakeDevice(
        compute=[process(4242, 100)],
        graphics=[process(1234, 22)],
        fail={"nvmlDeviceGetGraphicsRunningProcesses": NVML_ERROR_NOT_SUPPORTED},
    )

    (gpu,) = open_nvml(FakeNvml([device]), proc).sample().gpus

    assert [p.pid for p in gpu.processes] == [4242]


def test_a_failing_driver_version_leaves_the_gpus_readable(proc: Path) -> None:
    nvml = FakeNvml([FakeDevice()])
    nvml.driver_error = NVML_ERROR_UNKNOWN

    host = open_nvml(nvml, proc).sample()

    assert host.driver_version is None
    assert host.gpus[0].name == "NVIDIA H100 80GB HBM3"


def test_a_gpu_that_appears_is_enumerated(proc: Path) -> None:
    nvml = FakeNvml([FakeDevice(uuid="GPU-0")])
    telemetry = open_nvml(nvml, proc)
    assert len(telemetry.sample().gpus) == 1

    nvml.devices.append(FakeDevice(uuid="GPU-1"))

    assert [gpu.uuid for gpu in telemetry.sample().gpus] == ["GPU-0", "GPU-1"]


def test_a_failing_device_count_keeps_the_gpus_known(proc: Path) -> None:
    nvml = FakeNvml([FakeDevice(uuid="GPU-0")])
    telemetry = open_nvml(nvml, proc)

    nvml.count_error = NVML_ERROR_UNKNOWN

    assert [gpu.uuid for gpu in telemetry.sample().gpus] == ["GPU-0"]


def test_a_library_that_does_not_load_is_a_telemetry_error(proc: Path) -> None:
    with pytest.raises(TelemetryError, match="NVML could not be initialised: NVML Shared Library Not Found"):
        open_nvml(FakeNvml([], init_error=NVML_ERROR_LIBRARY_NOT_FOUND), proc)


def test_a_failed_count_at_start_shuts_nvml_down_again(proc: Path) -> None:
    nvml = FakeNvml([FakeDevice()], count_error=NVML_ERROR_UNKNOWN)

    with pytest.raises(TelemetryError, match="could not count the GPUs"):
        open_nvml(nvml, proc)

    assert (nvml.inits, nvml.shutdowns) == (1, 1)


def test_close_shuts_nvml_down_once_and_ends_sampling(proc: Path) -> None:
    nvml = FakeNvml([FakeDevice()])
    telemetry = open_nvml(nvml, proc)

    telemetry.close()
    telemetry.close()

    assert (nvml.inits, nvml.shutdowns) == (1, 1)
    with pytest.raises(TelemetryError, match="closed"):
        telemetry.sample()


def test_sampling_does_not_initialise_nvml_again(proc: Path) -> None:
    nvml = FakeNvml([FakeDevice()])
    telemetry = open_nvml(nvml, proc)

    for _ in range(3):
        telemetry.sample()

    assert nvml.inits == 1


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

    assert first.hostname == socket.gethostname()
    assert first.driver_version
    assert first.gpus, "NVML initialised but found no GPU"
    # The same GPUs, in the same order, with the same identities, poll after poll.
    assert [(g.index, g.uuid, g.name) for g in first.gpus] == [(g.index, g.uuid, g.name) for g in second.gpus]
    assert [g.index for g in first.gpus] == list(range(len(first.gpus)))
    assert len({g.uuid for g in first.gpus}) == len(first.gpus)
    for gpu in first.gpus + second.gpus:
        assert not gpu.lost, f"GPU {gpu.index} reads as lost"
        assert gpu.name
        assert gpu.uuid.startswith("GPU-")
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
    by_uuid = {gpu.uuid: gpu for gpu in smi_host.gpus}
    assert set(by_uuid) == {gpu.uuid for gpu in nvml_host.gpus}
    for gpu in nvml_host.gpus:
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
