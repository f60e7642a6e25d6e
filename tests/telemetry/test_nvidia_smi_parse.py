"""The nvidia-smi backend: the XML parser against real captures, and the subprocess around it."""

from __future__ import annotations

import os
import pwd
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gpubot.core.errors import TelemetryError
from gpubot.core.models import GpuSample, HostSample
from gpubot.telemetry.host_name import short_hostname
from gpubot.telemetry.nvidia_smi import NvidiaSmiTelemetry, parse_nvidia_smi_xml

# Real captures from real machines, copied from ../shared/fixtures so a bare clone tests them; see SOURCES.md.
FIXTURES = Path(__file__).resolve().parents[1] / "data" / "nvidia-smi"
CAPTURES = sorted(FIXTURES.glob("*.xml"))

_POWER_SECTIONS = ("gpu_power_readings", "power_readings")
# Where each figure can come from in some schema version: the test's own map, written from the captures.
FIELD_SOURCES = {
    "memory_total_mib": ("fb_memory_usage/total",),
    "memory_used_mib": ("fb_memory_usage/used",),
    "utilization_gpu_pct": ("utilization/gpu_util",),
    "temperature_c": ("temperature/gpu_temp",),
    "power_draw_w": tuple(
        f"{section}/{tag}"
        for section in _POWER_SECTIONS
        for tag in ("instant_power_draw", "average_power_draw", "power_draw")
    ),
    "power_limit_w": tuple(
        f"{section}/{tag}"
        for section in _POWER_SECTIONS
        for tag in ("current_power_limit", "enforced_power_limit", "power_limit")
    ),
}


def capture(name: str) -> HostSample:
    path = FIXTURES / f"telegraf__{name}.xml"
    return parse_nvidia_smi_xml(path.read_text(encoding="utf-8"), hostname="box")


def _numeric_texts(gpu: ET.Element, sources: tuple[str, ...]) -> list[str]:
    texts = [(gpu.findtext(source) or "").strip() for source in sources]
    return [text for text in texts if text[:1].isdigit()]


def test_the_captures_are_in_the_repository() -> None:
    assert len(CAPTURES) >= 15, f"the nvidia-smi captures are missing from {FIXTURES}"


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_every_capture_parses_without_inventing_figures(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    host = parse_nvidia_smi_xml(text, hostname="box")
    gpu_elements = ET.fromstring(text).findall("gpu")
    cards = [gpu for gpu in host.gpus if gpu.mig_index is None]

    assert host.hostname == "box"
    assert len(cards) == len(gpu_elements) >= 1
    assert len({gpu.uuid for gpu in host.gpus}) == len(host.gpus)
    assert all(follows_its_card(host, position) for position, gpu in enumerate(host.gpus) if gpu.parent_uuid)
    for sample, element in zip(cards, gpu_elements, strict=True):
        assert sample.name
        assert sample.memory_total_mib
        assert not sample.lost
        for field, sources in FIELD_SOURCES.items():
            value = getattr(sample, field)
            numbers = _numeric_texts(element, sources)
            if not numbers:
                # Every place this figure could come from said N/A (or was absent): unknown, not zero.
                assert value is None, f"{field} should be None, got {value!r}"
            elif value == 0:
                assert any(float(n.split()[0]) == 0 for n in numbers), f"{field} is 0 but the XML says {numbers}"
        if element.find("processes") is None:
            assert sample.processes_unknown  # no list is not an empty list
        else:
            assert sample.processes_unknown is None
        for process in sample.processes:
            assert process.pid > 0
            assert process.user is None  # the parser is pure: owners come from /proc in sample()
        # Where MIG is on, each slice follows its card, with its own memory and no utilization.
        slices = [gpu for gpu in host.gpus if gpu.parent_uuid == sample.uuid]
        devices = element.findall("mig_devices/mig_device")
        assert sample.mig_enabled == bool(slices) == (element.findtext("mig_mode/current_mig") == "Enabled")
        assert len(slices) == (len(devices) if sample.mig_enabled else 0)
        for piece in slices:
            assert piece.index == sample.index and piece.uuid.startswith(f"MIG-{sample.uuid}/")
            assert piece.memory_total_mib and piece.memory_total_mib < sample.memory_total_mib
            assert piece.utilization_gpu_pct is None and not piece.lost


def follows_its_card(host: HostSample, position: int) -> bool:
    card = next(gpu for gpu in reversed(host.gpus[:position]) if gpu.mig_index is None)
    return card.uuid == host.gpus[position].parent_uuid


def test_tesla_t4_lists_its_compute_and_graphics_processes() -> None:
    (gpu,) = capture("tesla-t4").gpus

    by_pid = {process.pid: process for process in gpu.processes}
    assert by_pid[5762].name == "python"
    assert by_pid[5762].used_memory_mib == 1005
    assert by_pid[675].name == "/usr/lib/xorg/Xorg"
    assert by_pid[675].used_memory_mib == 22
    # v11, old `power_readings` section with power_draw and enforced_power_limit
    assert (gpu.power_draw_w, gpu.power_limit_w) == (26.78, 70.0)


def test_a100_under_mig_has_no_utilization_and_reports_the_whole_card() -> None:
    host = capture("a100-sxm4-v12")
    gpu = host.gpus[0]

    assert gpu.utilization_gpu_pct is None
    # The card's own fb_memory_usage, not one of the four MIG slices (19968 MiB each).
    assert (gpu.memory_total_mib, gpu.memory_used_mib) == (81920, 50)
    assert gpu.index == 0  # position, not minor_number (1): the capture was cut down to one GPU
    assert (gpu.power_draw_w, gpu.power_limit_w) == (67.03, 500.0)
    assert host.driver_version == "535.54.03"
    assert gpu.processes == ()
    assert gpu.mig_enabled and gpu.mig_index is None


def test_dual_2070_has_two_gpus_with_their_own_uuids_and_indices() -> None:
    gpus = capture("dual_2070-v13").gpus

    assert [gpu.index for gpu in gpus] == [0, 1]
    assert [gpu.uuid for gpu in gpus] == [
        "GPU-12345678-aaaa-bbbb-cccc-0123456789ab",
        "GPU-12345678-aaaa-bbbb-cccc-0123456789cd",
    ]
    # v13: average_power_draw is N/A, so instant_power_draw, the only figure there is.
    assert [gpu.power_draw_w for gpu in gpus] == [9.23, 11.82]


def test_dual_2080_with_a_repeated_uuid_still_gives_two_gpus() -> None:
    first, second = capture("dual_2080-v13").gpus

    assert first.uuid == "GPU-12345678-aaaa-bbbb-cccc-0123456789ab"
    assert second.uuid == "GPU-12345678-aaaa-bbbb-cccc-0123456789ab@00000000:02:00.0"
    assert (first.index, second.index) == (0, 1)


def test_dual_2080_dedup_is_deterministic() -> None:
    assert capture("dual_2080-v13") == capture("dual_2080-v13")


def test_quadro_p400_old_schema_without_dtd_reads_power_as_unknown() -> None:
    host = capture("quadro-p400")
    (gpu,) = host.gpus

    assert host.driver_version == "418.43"
    assert gpu.name == "Quadro P400"
    # Every power_readings entry there reads N/A: unknown, never 0 W.
    assert (gpu.power_draw_w, gpu.power_limit_w) == (None, None)
    assert (gpu.memory_total_mib, gpu.memory_used_mib, gpu.temperature_c) == (1998, 0, 33)


def test_quadro_p2000_old_power_readings_section_parses() -> None:
    (gpu,) = capture("quadro-p2000-v12").gpus

    assert (gpu.power_draw_w, gpu.power_limit_w) == (4.61, 75.0)


def test_rtx_3080_v13_under_load_prefers_the_average_power_as_nvml_does() -> None:
    (gpu,) = capture("rtx-3080-v13").gpus

    assert gpu.utilization_gpu_pct == 65
    assert (gpu.memory_total_mib, gpu.memory_used_mib) == (10240, 9184)
    # NVML's nvmlDeviceGetPowerUsage is the average on Ampere and newer: the 139.62 W, not the instant 142.33 W.
    assert gpu.power_draw_w == 139.62
    assert gpu.power_limit_w == 320.0
    assert gpu.temperature_c == 27


def test_rtx_3080_v12_windows_capture_without_minor_number_uses_position() -> None:
    (gpu,) = capture("rtx-3080-v12").gpus

    assert gpu.index == 0
    assert [process.pid for process in gpu.processes] == [835, 1481, 2214, 4044, 42416]
    assert gpu.power_draw_w == 22.78  # v12 `gpu_power_readings/power_draw`


def test_rtx_4000_lists_processes_of_every_type() -> None:
    (gpu,) = capture("rtx-4000-sff-ada-v13").gpus

    assert [(p.pid, p.used_memory_mib) for p in gpu.processes] == [
        (1842, 410),  # G
        (3190, 451),  # G
        (4937, 160),  # C
        (34626, 183),  # C+G
    ]


def test_3090_v13_used_memory_leaves_out_the_reserved_part() -> None:
    (gpu,) = capture("3090-v13").gpus

    assert (gpu.memory_total_mib, gpu.memory_used_mib) == (24576, 7)


def test_h100_on_driver_580_reads_as_nvml_read_the_same_card() -> None:
    # Captured on the device machine in the same run in which bench/verify_gpu.py found NVML and
    # nvidia-smi in agreement there (BENCHMARKS.md, "On a real GPU").
    path = FIXTURES / "gpubot-device__h100-80gb-hbm3-v13.xml"
    host = parse_nvidia_smi_xml(path.read_text(encoding="utf-8"), hostname="box")

    assert host.driver_version == "580.159.04"
    (gpu,) = host.gpus
    assert (gpu.index, gpu.name, gpu.uuid) == (0, "NVIDIA H100 80GB HBM3", "GPU-e52a3328-88a9-1217-5f7e-1c798ef76c85")
    # Total is what NVML reports; the 480 MiB the driver reserves count as neither used nor free.
    assert (gpu.memory_total_mib, gpu.memory_used_mib) == (81559, 0)
    assert (gpu.power_limit_w, gpu.mig_enabled) == (700.0, False)
    assert gpu.processes == () and gpu.processes_unknown is None  # an empty list read, not an unknown one


def test_hand_trimmed_gtx_1070_ti_without_driver_version() -> None:
    host = capture("gtx-1070-ti")
    (gpu,) = host.gpus

    assert host.driver_version is None
    assert gpu.name == "GeForce GTX 1070 Ti"
    assert gpu.index == 0
    assert (gpu.memory_total_mib, gpu.memory_used_mib, gpu.utilization_gpu_pct) == (4096, 42, 0)
    assert (gpu.power_draw_w, gpu.power_limit_w) == (None, None)


def _log(*gpus: str, driver: str = "<driver_version>550.54.15</driver_version>") -> str:
    return f'<?xml version="1.0" ?><nvidia_smi_log>{driver}{"".join(gpus)}</nvidia_smi_log>'


def test_every_way_of_saying_unknown_becomes_none() -> None:
    gpu = """<gpu id="00000000:3B:00.0">
        <product_name>[N/A]</product_name><uuid>N/A</uuid><minor_number>Unknown Error</minor_number>
        <pci><pci_bus_id>00000000:3B:00.0</pci_bus_id></pci>
        <fb_memory_usage><total>[Not Supported]</total><used>Unknown Error</used></fb_memory_usage>
        <utilization><gpu_util>[Insufficient Permissions]</gpu_util></utilization>
        <temperature><gpu_temp>GPU is lost</gpu_temp></temperature>
        <gpu_power_readings><power_draw>Requested functionality has been deprecated</power_draw>
            <current_power_limit>[N/A]</current_power_limit></gpu_power_readings>
        <processes><process_info><pid>31337</pid><process_name>N/A</process_name>
            <used_memory>N/A</used_memory></process_info></processes>
    </gpu>"""

    host = parse_nvidia_smi_xml(_log(gpu, driver="<driver_version>N/A</driver_version>"), hostname="box")

    assert host.driver_version is None
    (sample,) = host.gpus
    assert sample == GpuSample(
        index=0,
        uuid="nvidia-smi-box-00000000:3B:00.0",
        processes=sample.processes,
        lost=True,  # it reports no figure at all
    )
    (process,) = sample.processes
    assert (process.pid, process.name, process.used_memory_mib) == (31337, None, None)


def test_a_figure_in_an_unexpected_unit_is_unknown_rather_than_misread() -> None:
    gpu = "<gpu><product_name>X</product_name><fb_memory_usage><total>80 GiB</total></fb_memory_usage></gpu>"

    (sample,) = parse_nvidia_smi_xml(_log(gpu), hostname="box").gpus

    assert sample.memory_total_mib is None


def test_a_log_with_no_gpus_is_an_empty_sample() -> None:
    host = parse_nvidia_smi_xml(_log(), hostname="box")

    assert host == HostSample(hostname="box", driver_version="550.54.15", gpus=())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", "cannot be parsed"),
        ("<nvidia_smi_log><gpu>", "cannot be parsed"),
        ("<html></html>", "<html>"),
    ],
)
def test_text_that_is_not_an_nvidia_smi_log_is_a_telemetry_error(text: str, message: str) -> None:
    with pytest.raises(TelemetryError, match=message):
        parse_nvidia_smi_xml(text, hostname="box")


# The subprocess path, with small shell scripts standing in for nvidia-smi.


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "nvidia-smi"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_sample_runs_the_executable_and_adds_process_owners(tmp_path: Path) -> None:
    fixture = FIXTURES / "telegraf__tesla-t4.xml"
    proc = tmp_path / "proc"
    (proc / "5762").mkdir(parents=True)
    (proc / "5762" / "status").write_text(f"Name:\tpython\nUid:\t{os.getuid()}\t0\t0\t0\n")
    executable = _script(tmp_path, f"cat '{fixture}'")

    host = NvidiaSmiTelemetry(executable, proc_root=proc).sample()

    assert host.hostname == short_hostname()
    assert host.driver_version == "515.105.01"
    owners = {process.pid: process.user for process in host.gpus[0].processes}
    try:
        expected = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        expected = str(os.getuid())
    assert owners == {5762: expected, 675: None}  # 675 is not in the fake /proc: gone, so unknown


def test_the_executable_is_passed_the_xml_query_flags(tmp_path: Path) -> None:
    executable = _script(
        tmp_path,
        'if [ "$*" = "-q -x" ]; then echo "<nvidia_smi_log/>"; else echo "wrong arguments: $*" >&2; exit 2; fi',
    )

    assert NvidiaSmiTelemetry(executable).sample().gpus == ()


def test_a_hung_executable_times_out(tmp_path: Path) -> None:
    executable = _script(tmp_path, "exec sleep 30")

    with pytest.raises(TelemetryError, match=r"did not finish within 0\.3 s"):
        NvidiaSmiTelemetry(executable, timeout_s=0.3).sample()


def test_a_missing_executable_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(TelemetryError, match="GPUBOT_NVIDIA_SMI"):
        NvidiaSmiTelemetry(str(tmp_path / "no-such-nvidia-smi")).sample()


def test_a_file_that_is_not_executable_names_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "nvidia-smi"
    path.write_text("not a program")

    with pytest.raises(TelemetryError, match="GPUBOT_NVIDIA_SMI"):
        NvidiaSmiTelemetry(str(path)).sample()


def test_a_failing_executable_reports_its_exit_status_and_first_stderr_line(tmp_path: Path) -> None:
    executable = _script(
        tmp_path,
        'echo "Failed to initialize NVML: Driver/library version mismatch" >&2\necho "second line" >&2\nexit 9',
    )

    with pytest.raises(TelemetryError, match=r"exit 9: Failed to initialize NVML: Driver/library version mismatch$"):
        NvidiaSmiTelemetry(executable).sample()


def test_a_failure_printed_on_stdout_is_reported(tmp_path: Path) -> None:
    # nvidia-smi prints "couldn't communicate with the driver" on stdout, not stderr.
    message = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    executable = _script(tmp_path, f'echo "{message}"\nexit 255')

    with pytest.raises(TelemetryError, match="exit 255: NVIDIA-SMI has failed"):
        NvidiaSmiTelemetry(executable).sample()


def test_garbage_on_stdout_with_success_is_a_telemetry_error(tmp_path: Path) -> None:
    executable = _script(tmp_path, 'echo "No devices were found"')

    with pytest.raises(TelemetryError, match="cannot be parsed"):
        NvidiaSmiTelemetry(executable).sample()
