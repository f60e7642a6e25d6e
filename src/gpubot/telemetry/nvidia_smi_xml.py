"""What `nvidia-smi` prints, turned into samples: the XML of `-q -x` and the MIG lines of `-L`. Pure: no I/O.

The parser is tolerant: nvidia-smi's XML schema has changed across driver generations (DTD v10 to v13, and
none at all), and any figure a GPU cannot report reads `N/A`, `[N/A]`, `Not Supported` or similar. All of
those, and any element that is missing, become None, never a crash and never a zero.

MIG: the XML lists a card's slices (`<mig_devices>`) with their GPU and compute instance IDs and memory,
and the card's processes with the instance they run in, but not the slices' UUIDs nor their profiles;
those come from `nvidia-smi -L` (`parse_mig_listing`, applied by `name_slices`).
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping

from gpubot.core.errors import TelemetryError
from gpubot.core.models import GpuSample, HostSample, ProcessSample

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
# Characters XML 1.0 forbids (a process name may hold any byte): replaced so one odd name cannot sink a sample.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_REPLACEMENT = "\ufffd"

# The averaged draw first: it is what NVML's nvmlDeviceGetPowerUsage returns on Ampere and newer, so both
# backends agree. DTD v13 splits the draw into average and instant readings; older schemas have one figure.
_POWER_SECTIONS = ("gpu_power_readings", "power_readings")
_POWER_DRAW_TAGS = ("average_power_draw", "power_draw", "instant_power_draw")
_POWER_LIMIT_TAGS = ("current_power_limit", "enforced_power_limit", "power_limit")

# `nvidia-smi -L`: "GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-…)", then, indented, one line per MIG device:
# "  MIG 1g.10gb     Device  0: (UUID: MIG-…)" (drivers before 470 print MIG-GPU-<uuid>/<gi>/<ci> there).
_LISTED_GPU = re.compile(r"^GPU\s+\d+:.*\(UUID:\s*(?P<uuid>GPU-[^)\s]+)\)\s*$")
_LISTED_MIG = re.compile(
    r"^\s+MIG\s+(?P<profile>\S+)\s+Device\s+(?P<index>\d+):\s*\(UUID:\s*(?P<uuid>MIG-[^)\s]+)\)\s*$"
)


@dataclasses.dataclass(frozen=True)
class MigListing:
    """One MIG device as `nvidia-smi -L` names it: its profile and its own UUID (what CUDA takes)."""

    profile: str
    uuid: str


def parse_nvidia_smi_xml(xml_text: str, hostname: str) -> HostSample:
    """Turn the output of `nvidia-smi -q -x` into a sample. Pure: no I/O, no process owners.

    Args:
        xml_text: The XML document nvidia-smi printed (bytes that were not UTF-8 already replaced by U+FFFD).
        hostname: The host it was run on (nvidia-smi does not say).

    Returns:
        One `GpuSample` per `<gpu>`, in document order, with unknown figures as None. A GPU's index is its
        position: nvidia-smi lists GPUs in NVML index order, the numbering `CUDA_VISIBLE_DEVICES` and
        `nvidia-smi -i` use (`minor_number` is the /dev/nvidiaN number, which can differ). A UUID that
        repeats within the document is made unique by appending `@<pci_bus_id>`, so two cards never collapse
        into one. A card in MIG mode is followed by one sample per slice, whose UUID is the legacy
        `MIG-GPU-<card uuid>/<gi>/<ci>` and profile None until `name_slices` gives them their real ones.

    Raises:
        TelemetryError: the text is not XML, or not an `nvidia_smi_log` document.
    """
    try:
        # ElementTree never fetches the external DTD the DOCTYPE names, so parsing needs no network.
        root = ET.fromstring(_NOT_XML.sub(_REPLACEMENT, xml_text))
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
        if sample.mig_enabled:
            gpus.extend(_slices(gpu, sample))
    return HostSample(hostname=hostname, driver_version=_text(root.find("driver_version")), gpus=tuple(gpus))


def parse_mig_listing(text: str) -> dict[tuple[str, int], MigListing]:
    """The MIG devices in the output of `nvidia-smi -L`, keyed by their card's UUID and their index on it.

    Args:
        text: What `nvidia-smi -L` printed.

    Returns:
        One entry per MIG line under a GPU line; lines in any other shape are ignored.
    """
    listing: dict[tuple[str, int], MigListing] = {}
    card: str | None = None
    for line in text.splitlines():
        if gpu := _LISTED_GPU.match(line):
            card = gpu["uuid"]
        elif (mig := _LISTED_MIG.match(line)) and card is not None:
            listing[(card, int(mig["index"]))] = MigListing(profile=mig["profile"], uuid=mig["uuid"])
    return listing


def name_slices(host: HostSample, listing: Mapping[tuple[str, int], MigListing]) -> HostSample:
    """Give each MIG slice the UUID and profile `nvidia-smi -L` lists for it; slices it does not list keep theirs.

    Args:
        host: A sample from `parse_nvidia_smi_xml`.
        listing: From `parse_mig_listing`.

    Returns:
        The sample, its slices renamed (name `<card name> MIG <profile>`, as NVML names a MIG device).
    """
    cards = {gpu.uuid: gpu for gpu in host.gpus if gpu.mig_index is None}
    gpus = []
    for gpu in host.gpus:
        listed = None
        if gpu.parent_uuid is not None and gpu.mig_index is not None:
            listed = listing.get((gpu.parent_uuid, gpu.mig_index))
        if listed is not None:
            card_name = cards[gpu.parent_uuid].name if gpu.parent_uuid in cards else None
            gpu = dataclasses.replace(
                gpu,
                uuid=listed.uuid,
                mig_profile=listed.profile,
                name=f"{card_name} MIG {listed.profile}" if card_name else gpu.name,
            )
        gpus.append(gpu)
    return dataclasses.replace(host, gpus=tuple(gpus))


def mig_layout(host: HostSample) -> tuple[tuple[str | None, int | None, str], ...]:
    """What identifies the MIG partitioning of a host: each slice's card, index and instance IDs (legacy UUID)."""
    return tuple((gpu.parent_uuid, gpu.mig_index, gpu.uuid) for gpu in host.gpus if gpu.mig_index is not None)


def _gpu(gpu: ET.Element, position: int, hostname: str) -> GpuSample:
    index = position
    memory_total = _int(gpu.find("fb_memory_usage/total"), "MiB")
    memory_used = _int(gpu.find("fb_memory_usage/used"), "MiB")
    utilization = _int(gpu.find("utilization/gpu_util"), "%")
    temperature = _int(gpu.find("temperature/gpu_temp"), "C")
    power_draw = _first_quantity(gpu, _POWER_DRAW_TAGS, "W")
    processes, unknown = _processes(gpu)
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
        processes=tuple(process for process, _instance in processes),
        # A GPU that reports no figure at all is listed but cannot be read: the same as NVML's lost GPU.
        lost=all(v is None for v in (memory_total, memory_used, utilization, temperature, power_draw)),
        processes_unknown=unknown,
        mig_enabled=(_text(gpu.find("mig_mode/current_mig")) or "").lower() == "enabled",
    )


def _slices(gpu: ET.Element, card: GpuSample) -> list[GpuSample]:
    processes, _unknown = _processes(gpu)
    slices = []
    for device in gpu.findall("mig_devices/mig_device"):
        mig_index = _int(device.find("index"), "")
        gi, ci = _int(device.find("gpu_instance_id"), ""), _int(device.find("compute_instance_id"), "")
        if mig_index is None:
            continue
        slices.append(
            GpuSample(
                index=card.index,
                # CUDA's own legacy name for a MIG device, until `nvidia-smi -L` gives the real UUID.
                uuid=f"MIG-{card.uuid}/{gi}/{ci}" if gi is not None and ci is not None else f"{card.uuid}/{mig_index}",
                name=card.name,
                memory_total_mib=_int(device.find("fb_memory_usage/total"), "MiB"),
                memory_used_mib=_int(device.find("fb_memory_usage/used"), "MiB"),
                processes=tuple(process for process, instance in processes if instance == (gi, ci)),
                processes_unknown=card.processes_unknown,
                mig_index=mig_index,
                parent_uuid=card.uuid,
            )
        )
    return slices


def _processes(gpu: ET.Element) -> tuple[list[tuple[ProcessSample, tuple[int | None, int | None]]], str | None]:
    """The processes with the (GPU, compute) instance each runs in, and why the list is incomplete, if it is."""
    section = gpu.find("processes")
    if section is None:
        return [], "nvidia-smi did not list processes"
    said = (section.text or "").strip()
    if not list(section) and said:
        # "N/A", "Not Supported", "Insufficient Permissions": said in place of the list.
        return [], f"nvidia-smi could not list processes ({said.strip('[]')})"
    processes = []
    unknown = None
    for info in section.findall("process_info"):
        pid = _text(info.find("pid"))
        if pid is None or not pid.isdigit() or int(pid) == 0:
            unknown = "nvidia-smi listed a process without a usable PID"
            continue
        instance = (_int(info.find("gpu_instance_id"), ""), _int(info.find("compute_instance_id"), ""))
        process = ProcessSample(
            pid=int(pid),
            name=_text(info.find("process_name")),
            used_memory_mib=_int(info.find("used_memory"), "MiB"),
        )
        processes.append((process, instance))
    return processes, unknown


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
    if _REPLACEMENT in text:
        # Bytes that were not UTF-8 (or not XML): whatever the value was, it cannot be shown as it is.
        return None
    return None if text.strip("[]").lower() in _NOT_A_VALUE else text


def _quantity(element: ET.Element | None, unit: str) -> float | None:
    """A number followed by `unit` ("81559 MiB", "65 %", "3" for no unit); None for anything else."""
    text = _text(element)
    match = _QUANTITY.fullmatch(text) if text is not None else None
    if match is None or match.group(2) != unit:
        return None
    return float(match.group(1))


def _int(element: ET.Element | None, unit: str) -> int | None:
    value = _quantity(element, unit)
    return round(value) if value is not None else None
