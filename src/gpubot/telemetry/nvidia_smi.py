"""The `nvidia-smi` backend: run `nvidia-smi -q -x` and parse its XML.

For hosts where the NVML library cannot be loaded from Python but the tool works. The parser is pure and
tolerant: nvidia-smi's XML schema has changed across driver generations (DTD v10 to v13, and none at all),
and any figure a GPU cannot report reads `N/A`, `[N/A]`, `Not Supported` or similar. All of those, and any
element that is missing, become None, never a crash and never a zero.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from gpubot.core.errors import TelemetryError
from gpubot.core.models import GpuSample, HostSample, ProcessSample
from gpubot.telemetry.process_owner import PROC_ROOT, process_owner

# What nvidia-smi prints in place of a value it does not have, lower-cased and without the brackets
# some versions put around them.
_NOT_A_VALUE = frozenset(
    {
        "n/a",
        "unknown error",
        "not supported",
        "insufficient permissions",
        "gpu is lost",
        "requested functionality has been deprecated",
        "",
    }
)
_QUANTITY = re.compile(r"(-?\d+(?:\.\d+)?)\s*(\S*)")

# Newer drivers (DTD v13) split the draw into instant and averaged readings; older ones have one figure.
_POWER_SECTIONS = ("gpu_power_readings", "power_readings")
_POWER_DRAW_TAGS = ("instant_power_draw", "average_power_draw", "power_draw")
_POWER_LIMIT_TAGS = ("current_power_limit", "enforced_power_limit", "power_limit")


class NvidiaSmiTelemetry:
    """Telemetry from the `nvidia-smi` executable."""

    backend_name = "nvidia-smi"

    def __init__(self, executable: str = "nvidia-smi", timeout_s: float = 10.0, *, proc_root: Path = PROC_ROOT) -> None:
        """Configure the command; nothing runs until `sample()`.

        Args:
            executable: Name or path of nvidia-smi (GPUBOT_NVIDIA_SMI).
            timeout_s: How long one run may take before it counts as hung.
            proc_root: Where procfs is mounted, to find process owners (a temporary tree in tests).
        """
        self.executable = executable
        self.timeout_s = timeout_s
        self.proc_root = proc_root

    def sample(self) -> HostSample:
        """Run `nvidia-smi -q -x` once and parse it, adding each process's owner from /proc.

        Raises:
            TelemetryError: the executable is missing, hangs, fails, or prints something that is not its XML.
        """
        host = parse_nvidia_smi_xml(self._run(), hostname=socket.gethostname())
        gpus = tuple(
            dataclasses.replace(
                gpu,
                processes=tuple(
                    dataclasses.replace(process, user=process_owner(process.pid, self.proc_root))
                    for process in gpu.processes
                ),
            )
            for gpu in host.gpus
        )
        return dataclasses.replace(host, gpus=gpus)

    def close(self) -> None:
        """Nothing to release: each sample is its own process."""

    def _run(self) -> str:
        command = [self.executable, "-q", "-x"]
        try:
            completed = subprocess.run(
                command,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=self.timeout_s,
                check=False,
            )
        except FileNotFoundError:
            raise TelemetryError(
                f"nvidia-smi was not found at {self.executable!r}: set GPUBOT_NVIDIA_SMI to its path, "
                "or choose another backend with GPUBOT_GPU_BACKEND."
            ) from None
        except subprocess.TimeoutExpired:
            raise TelemetryError(
                f"`{' '.join(command)}` did not finish within {self.timeout_s:g} s (is the driver hung?)."
            ) from None
        except OSError as error:
            raise TelemetryError(
                f"nvidia-smi at {self.executable!r} could not be started ({error}): check GPUBOT_NVIDIA_SMI."
            ) from error
        if completed.returncode != 0:
            # nvidia-smi prints its own failures ("couldn't communicate with the NVIDIA driver") on stdout.
            reason = _first_line(completed.stderr) or _first_line(completed.stdout) or "no message"
            raise TelemetryError(f"`{' '.join(command)}` failed with exit {completed.returncode}: {reason}")
        return completed.stdout


def parse_nvidia_smi_xml(xml_text: str, hostname: str) -> HostSample:
    """Turn the output of `nvidia-smi -q -x` into a sample. Pure: no I/O, no process owners.

    Args:
        xml_text: The XML document nvidia-smi printed.
        hostname: The host it was run on (nvidia-smi does not say).

    Returns:
        One `GpuSample` per `<gpu>`, in document order, with unknown figures as None. A GPU's index is its
        position: nvidia-smi lists GPUs in NVML index order, the numbering `CUDA_VISIBLE_DEVICES` and
        `nvidia-smi -i` use (`minor_number` is the /dev/nvidiaN number, which can differ). A UUID that
        repeats within the document is made unique by appending `@<pci_bus_id>`, so two cards never collapse into one.

    Raises:
        TelemetryError: the text is not XML, or not an `nvidia_smi_log` document.
    """
    try:
        # ElementTree never fetches the external DTD the DOCTYPE names, so parsing needs no network.
        root = ET.fromstring(xml_text)
    except ET.ParseError as error:
        raise TelemetryError(f"nvidia-smi printed XML that cannot be parsed: {error}.") from error
    if root.tag != "nvidia_smi_log":
        raise TelemetryError(f"nvidia-smi printed <{root.tag}>, not the expected <nvidia_smi_log>.")
    gpus: list[GpuSample] = []
    seen_uuids: set[str] = set()
    for position, gpu in enumerate(root.findall("gpu")):
        sample = _gpu(gpu, position, hostname)
        if sample.uuid in seen_uuids:
            sample = dataclasses.replace(sample, uuid=_unique_uuid(sample.uuid, _pci_bus_id(gpu), seen_uuids))
        seen_uuids.add(sample.uuid)
        gpus.append(sample)
    return HostSample(hostname=hostname, driver_version=_text(root.find("driver_version")), gpus=tuple(gpus))


def _gpu(gpu: ET.Element, position: int, hostname: str) -> GpuSample:
    index = position
    memory_total = _int(gpu.find("fb_memory_usage/total"), "MiB")
    memory_used = _int(gpu.find("fb_memory_usage/used"), "MiB")
    utilization = _int(gpu.find("utilization/gpu_util"), "%")
    temperature = _int(gpu.find("temperature/gpu_temp"), "C")
    power_draw = _first_quantity(gpu, _POWER_DRAW_TAGS, "W")
    return GpuSample(
        index=index,
        uuid=_text(gpu.find("uuid")) or f"nvidia-smi-{hostname}-{_pci_bus_id(gpu) or index}",
        name=_text(gpu.find("product_name")),
        memory_total_mib=memory_total,
        memory_used_mib=memory_used,
        utilization_gpu_pct=utilization,
        temperature_c=temperature,
        power_draw_w=power_draw,
        power_limit_w=_first_quantity(gpu, _POWER_LIMIT_TAGS, "W"),
        processes=tuple(_processes(gpu)),
        # A GPU that reports no figure at all is listed but cannot be read: the same as NVML's lost GPU.
        lost=all(v is None for v in (memory_total, memory_used, utilization, temperature, power_draw)),
    )


def _processes(gpu: ET.Element) -> list[ProcessSample]:
    processes = []
    for info in gpu.findall("processes/process_info"):
        pid = _text(info.find("pid"))
        if pid is None or not pid.isdigit():
            continue
        processes.append(
            ProcessSample(
                pid=int(pid),
                name=_text(info.find("process_name")),
                used_memory_mib=_int(info.find("used_memory"), "MiB"),
            )
        )
    return processes


def _first_quantity(gpu: ET.Element, tags: tuple[str, ...], unit: str) -> float | None:
    for section in _POWER_SECTIONS:
        for tag in tags:
            value = _quantity(gpu.find(f"{section}/{tag}"), unit)
            if value is not None:
                return value
    return None


def _pci_bus_id(gpu: ET.Element) -> str | None:
    return _text(gpu.find("pci/pci_bus_id")) or gpu.get("id")


def _unique_uuid(uuid: str, pci_bus_id: str | None, taken: set[str]) -> str:
    candidate = f"{uuid}@{pci_bus_id or len(taken)}"
    suffix = 2
    while candidate in taken:
        candidate = f"{uuid}@{pci_bus_id or len(taken)}.{suffix}"
        suffix += 1
    return candidate


def _text(element: ET.Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    text = element.text.strip()
    return None if text.strip("[]").lower() in _NOT_A_VALUE else text


def _quantity(element: ET.Element | None, unit: str) -> float | None:
    """A number followed by `unit` ("81559 MiB", "65 %"); None for anything else, even another unit."""
    text = _text(element)
    match = _QUANTITY.fullmatch(text) if text is not None else None
    if match is None or match.group(2) != unit:
        return None
    return float(match.group(1))


def _int(element: ET.Element | None, unit: str) -> int | None:
    value = _quantity(element, unit)
    return round(value) if value is not None else None


def _first_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return None
