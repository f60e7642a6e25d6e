"""The `fake` backend: GPUs described by a JSON file, read again on every sample.

Re-reading is the feature: a demo or an external check edits the file and the bot sees the change on its
next poll, with no restart. The format mirrors `HostSample`; any field may be left out (unknown):

    {"hostname": "gpu-box-1", "driver_version": "550.54.15",
     "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-0000",
               "memory_total_mib": 81559, "memory_used_mib": 8300,
               "utilization_gpu_pct": 85, "temperature_c": 72,
               "power_draw_w": 450.0, "power_limit_w": 700.0, "lost": false,
               "processes": [{"pid": 4242, "name": "python", "used_memory_mib": 8192, "user": "alice"}]}]}

A GPU that answers but cannot be read has `"unreadable": "no permission"` (the reason); one whose process
list cannot be read has `"processes_unknown": "no permission"`. A card in MIG mode lists its slices, each
a GPU of its own in the sample, right after the card (`mig_index` defaults to the slice's position, `uuid`
to a fake `MIG-…` one; a slice takes the fields of a GPU, utilization aside, which MIG does not report):

    {"index": 1, "name": "NVIDIA A100-SXM4-80GB", "uuid": "GPU-0001",
     "mig_slices": [{"mig_index": 1, "profile": "3g.40gb", "uuid": "MIG-0001-1",
                     "memory_total_mib": 40192, "memory_used_mib": 0, "processes": []},
                    {"mig_index": 2, "profile": "1g.10gb", "processes_unknown": "no permission"}]}
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from gpubot.core.errors import TelemetryError
from gpubot.core.models import GpuSample, HostSample, ProcessSample
from gpubot.telemetry.host_name import short_hostname


class FakeTelemetry:
    """Telemetry read from a JSON file (GPUBOT_FAKE_GPUS), for demos, tests and external checks."""

    backend_name = "fake"

    def __init__(self, path: Path) -> None:
        """Remember the file; it is first read by `sample()`, so it may be written after start-up.

        Args:
            path: The JSON file describing the GPUs.
        """
        self.path = path

    def sample(self) -> HostSample:
        """Read the file and return what it describes.

        A wrongly typed field (say `"temperature_c": "hot"`) becomes None for that field only.

        Raises:
            TelemetryError: the file is missing, unreadable, not JSON, or not shaped like a host.
        """
        document = self._load()
        hostname = _str(document.get("hostname")) or short_hostname()
        gpus_field = document.get("gpus")
        if not isinstance(gpus_field, list):
            raise TelemetryError(f'Fake GPU file {self.path}: expected a "gpus" list.')
        gpus: list[GpuSample] = []
        for position, entry in enumerate(gpus_field):
            if not isinstance(entry, dict):
                raise TelemetryError(
                    f"Fake GPU file {self.path}: gpus[{position}] should be an object, not {type(entry).__name__}."
                )
            gpus.extend(_gpu(entry, position, hostname))
        return HostSample(
            hostname=hostname,
            driver_version=_str(document.get("driver_version")),
            gpus=tuple(gpus),
        )

    def close(self) -> None:
        """Nothing to release: the file is opened and closed on each sample."""

    def _load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TelemetryError(
                f"Fake GPU file {self.path} does not exist (set GPUBOT_FAKE_GPUS to a JSON file)."
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise TelemetryError(f"Fake GPU file {self.path} cannot be read: {error}.") from error
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise TelemetryError(f"Fake GPU file {self.path} is not valid JSON: {error}.") from error
        if not isinstance(document, dict):
            raise TelemetryError(f"Fake GPU file {self.path}: expected a JSON object, not {type(document).__name__}.")
        return document


def _gpu(entry: dict[str, Any], position: int, hostname: str) -> list[GpuSample]:
    """The card `entry` describes, then its MIG slices."""
    index = _int(entry.get("index"))
    if index is None:
        index = position
    slices = entry.get("mig_slices")
    # Derived, not random, so the same file names the same GPU on every read (claims key on UUID).
    uuid = _str(entry.get("uuid")) or f"fake-{hostname}-{index}"
    card = _sample(entry, index, uuid, mig_enabled=isinstance(slices, list))
    if not isinstance(slices, list):
        return [card]
    samples = [card]
    for slice_position, slice_entry in enumerate(slices):
        if not isinstance(slice_entry, dict):
            continue
        mig_index = _int(slice_entry.get("mig_index"))
        mig_index = slice_position if mig_index is None else mig_index
        slice_uuid = _str(slice_entry.get("uuid")) or f"MIG-fake-{hostname}-{index}-{mig_index}"
        sample = _sample(slice_entry, index, slice_uuid, mig_enabled=False)
        samples.append(
            replace(
                sample,
                name=sample.name or card.name,
                utilization_gpu_pct=None,
                mig_index=mig_index,
                parent_uuid=uuid,
                mig_profile=_str(slice_entry.get("profile")),
            )
        )
    return samples


def _sample(entry: dict[str, Any], index: int, uuid: str, *, mig_enabled: bool) -> GpuSample:
    processes = entry.get("processes")
    return GpuSample(
        index=index,
        uuid=uuid,
        name=_str(entry.get("name")),
        memory_total_mib=_int(entry.get("memory_total_mib")),
        memory_used_mib=_int(entry.get("memory_used_mib")),
        utilization_gpu_pct=_int(entry.get("utilization_gpu_pct")),
        temperature_c=_int(entry.get("temperature_c")),
        power_draw_w=_float(entry.get("power_draw_w")),
        power_limit_w=_float(entry.get("power_limit_w")),
        processes=tuple(_processes(processes)) if isinstance(processes, list) else (),
        lost=entry.get("lost") is True,
        unreadable=_str(entry.get("unreadable")),
        processes_unknown=_str(entry.get("processes_unknown")),
        mig_enabled=mig_enabled,
    )


def _processes(entries: list[Any]) -> list[ProcessSample]:
    processes = []
    for entry in entries:
        pid = _int(entry.get("pid")) if isinstance(entry, dict) else None
        # A process is identified by its PID; without one there is nothing to show or to match on.
        if pid is None:
            continue
        processes.append(
            ProcessSample(
                pid=pid,
                name=_str(entry.get("name")),
                used_memory_mib=_int(entry.get("used_memory_mib")),
                user=_str(entry.get("user")),
            )
        )
    return processes


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _float(value: Any) -> float | None:
    # bool is an int subclass; `true` is never a measurement.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = _float(value)
    return round(number) if number is not None else None
