"""The `nvml` backend: NVIDIA's management library through its own binding (nvidia-ml-py's `pynvml`).

This is the only module that imports pynvml. Every NVML call goes through one choke point,
`NvmlTelemetry._call`: an `NVMLError` there becomes None for that one field of that one GPU, and each
distinct cause is logged once rather than on every poll. A GPU that reports `GPU is lost`, or whose every
field fails, is listed with `lost=True`. So an unsupported field or one broken card never breaks a sample.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pynvml

from gpubot.core.errors import TelemetryError
from gpubot.core.models import GpuSample, HostSample, ProcessSample
from gpubot.telemetry.process_owner import PROC_ROOT, process_name, process_owner

_log = logging.getLogger(__name__)

_T = TypeVar("_T")
_BYTES_PER_MIB = 1024 * 1024
# Old bindings hand Windows' "not available" process memory through as the largest unsigned long long.
_NOT_AVAILABLE_ULL = 2**64 - 1
# The ways a driver says it has no v2 memory call: the function is missing, or the struct version is refused.
_MEMORY_V2_REFUSALS = (
    "NVML_ERROR_FUNCTION_NOT_FOUND",
    "NVML_ERROR_NOT_SUPPORTED",
    "NVML_ERROR_ARGUMENT_VERSION_MISMATCH",
    "NVML_ERROR_INVALID_ARGUMENT",
)


@dataclass
class _Reading:
    """What the choke point learnt about one GPU (None: the host) during one sample."""

    gpu: int | None
    calls: int = 0
    failures: int = 0
    lost: bool = False


class NvmlTelemetry:
    """Telemetry read straight from NVML, the library nvidia-smi itself is built on."""

    backend_name = "nvml"

    def __init__(self, nvml: Any = pynvml, proc_root: Path = PROC_ROOT) -> None:
        """Initialise NVML and find the GPUs.

        NVML counts its initialisations, so each instance's `close()` undoes exactly its own.

        Args:
            nvml: The `pynvml` module, or a stand-in of the same shape in tests.
            proc_root: Where procfs is mounted, to name processes and find their owners.

        Raises:
            TelemetryError: the NVML library is missing or does not initialise (no driver, no GPU).
        """
        self._nvml = nvml
        self._proc_root = proc_root
        self._logged: set[tuple[int | None, str, object]] = set()
        self._handles: list[Any] = []
        # The last UUID and name each GPU reported, so a GPU that is lost later keeps its identity
        # (claims are keyed on UUID) instead of turning into a new, anonymous card.
        self._identities: dict[int, tuple[str | None, str | None]] = {}
        self._memory_v1_only: set[int] = set()
        self._memory_v2_refusals = frozenset(getattr(nvml, name) for name in _MEMORY_V2_REFUSALS if hasattr(nvml, name))
        self._closed = False
        try:
            nvml.nvmlInit()
        except (nvml.NVMLError, OSError) as error:
            raise TelemetryError(f"NVML could not be initialised: {error}.") from error
        try:
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as error:
            # The count's error is the one worth reporting; a failing shutdown on top of it adds nothing.
            with contextlib.suppress(nvml.NVMLError):
                nvml.nvmlShutdown()
            raise TelemetryError(f"NVML could not count the GPUs: {error}.") from error
        self._enumerate(count)

    def sample(self) -> HostSample:
        """Read every GPU once.

        Raises:
            TelemetryError: the backend was closed.
        """
        if self._closed:
            raise TelemetryError("The NVML backend has been closed.")
        host = _Reading(gpu=None)
        count = self._call(host, "device count", self._nvml.nvmlDeviceGetCount)
        # Handles stay valid while the set of GPUs is the same; a count that changed means a GPU came or went.
        if count is not None and count != len(self._handles):
            self._enumerate(count)
        driver_version = _text(self._call(host, "driver version", self._nvml.nvmlSystemGetDriverVersion))
        return HostSample(
            hostname=socket.gethostname(),
            driver_version=driver_version,
            gpus=tuple(self._gpu(index) for index in range(len(self._handles))),
        )

    def close(self) -> None:
        """Shut NVML down (once; later calls do nothing)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError as error:
            # Nothing is left to release and the process is usually exiting; failing the shutdown would
            # only hide whatever made the caller close us.
            _log.warning("NVML shutdown failed: %s", error)

    def _enumerate(self, count: int) -> None:
        self._handles = [
            self._call(_Reading(gpu=index), "handle", self._nvml.nvmlDeviceGetHandleByIndex, index)
            for index in range(count)
        ]
        self._identities.clear()
        self._memory_v1_only.clear()

    def _gpu(self, index: int) -> GpuSample:
        nvml = self._nvml
        reading = _Reading(gpu=index)
        handle = self._handles[index]
        if handle is None:
            # A handle that could not be had at enumeration may be available now (the GPU was resetting).
            handle = self._call(reading, "handle", nvml.nvmlDeviceGetHandleByIndex, index)
            self._handles[index] = handle
        if handle is None:
            return self._lost(index)
        uuid = _text(self._call(reading, "uuid", nvml.nvmlDeviceGetUUID, handle))
        name = _text(self._call(reading, "name", nvml.nvmlDeviceGetName, handle))
        memory = self._call(reading, "memory", self._memory_info, index, handle)
        utilization = self._call(reading, "utilization", nvml.nvmlDeviceGetUtilizationRates, handle)
        temperature_c = self._call(
            reading, "temperature", nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU
        )
        power_draw_mw = self._call(reading, "power draw", nvml.nvmlDeviceGetPowerUsage, handle)
        power_limit_mw = self._call(reading, "power limit", nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        processes = self._processes(reading, handle)
        if uuid is not None:
            self._identities[index] = (uuid, name or self._identities.get(index, (None, None))[1])
        if reading.lost or reading.failures == reading.calls:
            return self._lost(index)
        return GpuSample(
            index=index,
            uuid=uuid or self._known_uuid(index),
            name=name or self._identities.get(index, (None, None))[1],
            memory_total_mib=_mib(getattr(memory, "total", None)),
            memory_used_mib=_mib(getattr(memory, "used", None)),
            utilization_gpu_pct=_int(getattr(utilization, "gpu", None)),
            temperature_c=_int(temperature_c),
            power_draw_w=_watts(power_draw_mw),
            power_limit_w=_watts(power_limit_mw),
            processes=processes,
        )

    def _lost(self, index: int) -> GpuSample:
        return GpuSample(
            index=index,
            uuid=self._known_uuid(index),
            name=self._identities.get(index, (None, None))[1],
            lost=True,
        )

    def _known_uuid(self, index: int) -> str:
        uuid = self._identities.get(index, (None, None))[0]
        return uuid or f"nvml-unknown-{socket.gethostname()}-{index}"

    def _memory_info(self, index: int, handle: Any) -> Any:
        """Memory through the v2 struct, where `used` leaves out what the driver reserves; v1 otherwise."""
        nvml = self._nvml
        version = getattr(nvml, "nvmlMemory_v2", None)
        if version is not None and index not in self._memory_v1_only:
            try:
                return nvml.nvmlDeviceGetMemoryInfo(handle, version=version)
            except TypeError:
                pass  # bindings older than the `version` argument
            except nvml.NVMLError as error:
                if getattr(error, "value", None) not in self._memory_v2_refusals:
                    raise
            # Remembered so the refused call is not repeated on every poll.
            self._memory_v1_only.add(index)
        return nvml.nvmlDeviceGetMemoryInfo(handle)

    def _processes(self, reading: _Reading, handle: Any) -> tuple[ProcessSample, ...]:
        nvml = self._nvml
        used_bytes_by_pid: dict[int, int | None] = {}
        for field, query in (
            ("compute processes", nvml.nvmlDeviceGetComputeRunningProcesses),
            ("graphics processes", nvml.nvmlDeviceGetGraphicsRunningProcesses),
        ):
            for info in self._call(reading, field, query, handle) or ():
                used = getattr(info, "usedGpuMemory", None)
                known = isinstance(used, int) and 0 <= used < _NOT_AVAILABLE_ULL
                # A C+G process is in both lists; keep whichever listing knows its memory.
                if used_bytes_by_pid.get(info.pid) is None:
                    used_bytes_by_pid[info.pid] = used if known else None
        return tuple(
            ProcessSample(
                pid=pid,
                name=process_name(pid, self._proc_root),
                used_memory_mib=_mib(used),
                user=process_owner(pid, self._proc_root),
            )
            for pid, used in used_bytes_by_pid.items()
        )

    def _call(self, reading: _Reading, field: str, query: Callable[..., _T], *args: Any) -> _T | None:
        """The choke point: run one NVML query; an NVMLError makes that field None and is logged once."""
        if reading.lost:
            # After "GPU is lost" every query on the handle fails the same way, sometimes slowly.
            return None
        reading.calls += 1
        try:
            return query(*args)
        except self._nvml.NVMLError as error:
            reading.failures += 1
            code = getattr(error, "value", None)
            if code == getattr(self._nvml, "NVML_ERROR_GPU_IS_LOST", None):
                reading.lost = True
            cause = (reading.gpu, field, code if code is not None else str(error))
            if cause not in self._logged:
                self._logged.add(cause)
                where = "host" if reading.gpu is None else f"GPU {reading.gpu}"
                _log.warning("NVML: %s of %s is unavailable (%s); shown as n/a, logged once.", field, where, error)
            return None


def _text(value: object) -> str | None:
    # Older bindings return bytes; nvidia-ml-py returns str.
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _mib(value: object) -> int | None:
    number = _int(value)
    return number // _BYTES_PER_MIB if number is not None else None


def _watts(milliwatts: object) -> float | None:
    number = _int(milliwatts)
    return number / 1000.0 if number is not None else None
