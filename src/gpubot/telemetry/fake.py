"""The `fake` backend: GPUs described by a JSON file, read again on every sample.

Re-reading is the feature: a demo or an external check edits the file and the bot sees the change on its
next poll, with no restart. The format mirrors `HostSample`; any field may be left out (unknown):

    {"hostname": "gpu-box-1", "driver_version": "550.54.15",
     "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-0000",
               "memory_total_mib": 81559, "memory_used_mib": 8300,
               "utilization_gpu_pct": 85, "temperature_c": 72,
               "power_draw_w": 450.0, "power_limit_w": 700.0, "lost": false,
               "processes": [{"pid": 4242, "name": "python", "used_memory_mib": 8192, "user": "alice"}]}]}
"""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path
from typing import Any

from gpubot.core.errors import TelemetryError
from gpubot.core.models import GpuSample, HostSample, ProcessSample


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
        hostname = _str(document.get("hostname")) or socket.gethostname()
        gpus_field = document.get("gpus")
        if not isinstance(gpus_field, list):
            raise TelemetryError(f'Fake GPU file {self.path}: expected a "gpus" list.')
        gpus: list[GpuSample] = []
        for position, entry in enumerate(gpus_field):
            if not isinstance(entry, dict):
                raise TelemetryError(
                    f"Fake GPU file {self.path}: gpus[{position}] should be an object, not {type(entry).__name__}."
                )
            gpus.append(_gpu(entry, position, hostname))
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


def _gpu(entry: dict[str, Any], position: int, hostname: str) -> GpuSample:
    index = _int(entry.get("index"))
    if index is None:
        index = position
    processes = entry.get("processes")
    return GpuSample(
        index=index,
        # Derived, not random, so the same file names the same GPU on every read (claims key on UUID).
        uuid=_str(entry.get("uuid")) or f"fake-{hostname}-{index}",
        name=_str(entry.get("name")),
        memory_total_mib=_int(entry.get("memory_total_mib")),
        memory_used_mib=_int(entry.get("memory_used_mib")),
        utilization_gpu_pct=_int(entry.get("utilization_gpu_pct")),
        temperature_c=_int(entry.get("temperature_c")),
        power_draw_w=_float(entry.get("power_draw_w")),
        power_limit_w=_float(entry.get("power_limit_w")),
        processes=tuple(_processes(processes)) if isinstance(processes, list) else (),
        lost=entry.get("lost") is True,
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
