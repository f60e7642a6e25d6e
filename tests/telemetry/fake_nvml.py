"""A small stand-in for the `pynvml` module: the functions and constants NvmlTelemetry uses, nothing more.

Devices are plain objects; a test makes one field fail by naming the NVML function and an error code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

_MESSAGES = {
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}

MIB = 1024 * 1024


class FakeNvmlError(Exception):
    """Shaped like pynvml.NVMLError: the NVML return code is in `.value`."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML Error with code {self.value}")


@dataclass
class FakeDevice:
    """One GPU. `fail` maps an NVML function name to the error code it raises."""

    name: str | bytes = "NVIDIA H100 80GB HBM3"
    uuid: str | bytes = "GPU-00000000-0000-0000-0000-000000000000"
    total_bytes: int = 81559 * MIB
    reserved_bytes: int = 479 * MIB
    used_bytes: int = 8300 * MIB
    utilization_gpu_pct: int = 85
    temperature_c: int = 72
    power_mw: int = 450_123
    power_limit_mw: int = 700_000
    compute: list[SimpleNamespace] = field(default_factory=list)
    graphics: list[SimpleNamespace] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    memory_v2: bool = True
    lost: bool = False
    calls: int = 0

    def answer(self, function: str, value: object) -> object:
        self.calls += 1
        if self.lost:
            raise FakeNvmlError(NVML_ERROR_GPU_IS_LOST)
        if function in self.fail:
            raise FakeNvmlError(self.fail[function])
        return value


def process(pid: int, used_mib: int | None) -> SimpleNamespace:
    """A process entry as the bindings return it (usedGpuMemory in bytes, None when unknown)."""
    return SimpleNamespace(pid=pid, usedGpuMemory=None if used_mib is None else used_mib * MIB)


class FakeNvml:
    """The module-shaped object handed to NvmlTelemetry(nvml=...)."""

    NVMLError = FakeNvmlError
    NVML_ERROR_INVALID_ARGUMENT = NVML_ERROR_INVALID_ARGUMENT
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_FUNCTION_NOT_FOUND = NVML_ERROR_FUNCTION_NOT_FOUND
    NVML_ERROR_GPU_IS_LOST = NVML_ERROR_GPU_IS_LOST
    NVML_TEMPERATURE_GPU = 0
    nvmlMemory_v2 = 0x02000028

    def __init__(
        self,
        devices: list[FakeDevice],
        *,
        driver_version: str | bytes = "550.54.15",
        init_error: int | None = None,
        count_error: int | None = None,
    ) -> None:
        self.devices = devices
        self.driver_version = driver_version
        self.init_error = init_error
        self.count_error = count_error
        self.handle_errors: dict[int, int] = {}
        self.driver_error: int | None = None
        self.inits = 0
        self.shutdowns = 0
        self.memory_v2_calls = 0

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise FakeNvmlError(self.init_error)
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> str | bytes:
        if self.driver_error is not None:
            raise FakeNvmlError(self.driver_error)
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:
        if self.count_error is not None:
            raise FakeNvmlError(self.count_error)
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeDevice:
        if index in self.handle_errors:
            raise FakeNvmlError(self.handle_errors[index])
        return self.devices[index]

    def nvmlDeviceGetName(self, handle: FakeDevice) -> object:
        return handle.answer("nvmlDeviceGetName", handle.name)

    def nvmlDeviceGetUUID(self, handle: FakeDevice) -> object:
        return handle.answer("nvmlDeviceGetUUID", handle.uuid)

    def nvmlDeviceGetMemoryInfo(self, handle: FakeDevice, version: int | None = None) -> object:
        if version is None:
            # v1 counts what the driver reserves as used.
            used = handle.used_bytes + handle.reserved_bytes
            info = SimpleNamespace(total=handle.total_bytes, free=handle.total_bytes - used, used=used)
            return handle.answer("nvmlDeviceGetMemoryInfo", info)
        self.memory_v2_calls += 1
        if not handle.memory_v2:
            handle.answer("nvmlDeviceGetMemoryInfo_v2", None)
            raise FakeNvmlError(NVML_ERROR_FUNCTION_NOT_FOUND)
        info = SimpleNamespace(
            version=version,
            total=handle.total_bytes,
            reserved=handle.reserved_bytes,
            free=handle.total_bytes - handle.reserved_bytes - handle.used_bytes,
            used=handle.used_bytes,
        )
        return handle.answer("nvmlDeviceGetMemoryInfo", info)

    def nvmlDeviceGetUtilizationRates(self, handle: FakeDevice) -> object:
        return handle.answer(
            "nvmlDeviceGetUtilizationRates", SimpleNamespace(gpu=handle.utilization_gpu_pct, memory=10)
        )

    def nvmlDeviceGetTemperature(self, handle: FakeDevice, sensor: int) -> object:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return handle.answer("nvmlDeviceGetTemperature", handle.temperature_c)

    def nvmlDeviceGetPowerUsage(self, handle: FakeDevice) -> object:
        return handle.answer("nvmlDeviceGetPowerUsage", handle.power_mw)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeDevice) -> object:
        return handle.answer("nvmlDeviceGetEnforcedPowerLimit", handle.power_limit_mw)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeDevice) -> object:
        return handle.answer("nvmlDeviceGetComputeRunningProcesses", list(handle.compute))

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: FakeDevice) -> object:
        return handle.answer("nvmlDeviceGetGraphicsRunningProcesses", list(handle.graphics))


class OldBindingsNvml(FakeNvml):
    """Bindings whose nvmlDeviceGetMemoryInfo predates the `version` argument (calling it so is a TypeError)."""

    def nvmlDeviceGetMemoryInfo(self, handle: FakeDevice) -> object:  # type: ignore[override]
        return super().nvmlDeviceGetMemoryInfo(handle)
