"""A simulated NVIDIA driver, spoken to through the real nvidia-ml-py binding.

`install` puts a `SimulatedDriver`'s library where the binding keeps the loaded `libnvidia-ml.so.1`
(`pynvml.nvmlLib`). Each exported symbol is a ctypes C function pointer (`CFUNCTYPE`) over a Python
function, so the binding's own wrappers run unchanged: its argument conversion, its struct layouts, the
two-call process-list protocol, its return-code checks. The driver side lays out its structs as `nvml.h`
does, writing raw memory through the pointers it is given; a symbol a driver lacks is simply not there,
so the binding fails the way it does against that driver.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from ctypes import CFUNCTYPE, Structure, c_int, c_uint, c_ulonglong, c_void_p, sizeof
from dataclasses import dataclass, field
from typing import Any

import pynvml
import pytest

SUCCESS = 0
UNINITIALIZED = 1
INVALID_ARGUMENT = 2
NOT_SUPPORTED = 3
NO_PERMISSION = 4
NOT_FOUND = 6
INSUFFICIENT_SIZE = 7
DRIVER_NOT_LOADED = 9
GPU_IS_LOST = 15
ARGUMENT_VERSION_MISMATCH = 25
UNKNOWN = 999

MIB = 1024 * 1024
NOT_AVAILABLE = 2**64 - 1
NO_INSTANCE = 0xFFFFFFFF


# The driver's structs, as nvml.h declares them.
class Memory(Structure):
    _fields_ = [("total", c_ulonglong), ("free", c_ulonglong), ("used", c_ulonglong)]


class MemoryV2(Structure):
    _fields_ = [
        ("version", c_uint),
        ("total", c_ulonglong),
        ("reserved", c_ulonglong),
        ("free", c_ulonglong),
        ("used", c_ulonglong),
    ]


class Utilization(Structure):
    _fields_ = [("gpu", c_uint), ("memory", c_uint)]


class TemperatureV1(Structure):
    _fields_ = [("version", c_uint), ("sensorType", c_uint), ("temperature", c_int)]


class ProcessInfoV1(Structure):
    _fields_ = [("pid", c_uint), ("usedGpuMemory", c_ulonglong)]


class ProcessInfoV2(Structure):
    _fields_ = [
        ("pid", c_uint),
        ("usedGpuMemory", c_ulonglong),
        ("gpuInstanceId", c_uint),
        ("computeInstanceId", c_uint),
    ]


class ProcessInfoV3Cc(Structure):
    """What drivers 535.43 to 535.86 write for a v3 entry: 32 bytes, where every binding expects 24."""

    _fields_ = [*ProcessInfoV2._fields_, ("usedGpuCcProtectedMemory", c_ulonglong)]


MEMORY_V2_VERSION = sizeof(MemoryV2) | 2 << 24
TEMPERATURE_V1_VERSION = sizeof(TemperatureV1) | 1 << 24


@dataclass
class Process:
    pid: int
    used_mib: int | None
    gpu_instance: int = NO_INSTANCE
    compute_instance: int = NO_INSTANCE


@dataclass
class Answers:
    """What one GPU or MIG slice answers. `fail` maps a symbol to the code it returns instead."""

    uuid: bytes = b"GPU-00000000-0000-0000-0000-000000000000"
    name: bytes = b"NVIDIA H100 80GB HBM3"
    total_mib: int = 81559
    used_mib: int = 0
    reserved_mib: int = 0
    compute: list[Process] = field(default_factory=list)
    graphics: list[Process] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    calls: int = 0


@dataclass
class Slice(Answers):
    gpu_instance: int = 0
    compute_instance: int = 0


@dataclass
class Gpu(Answers):
    utilization_pct: int = 0
    temperature_c: int = 40
    power_mw: int = 100_000
    power_limit_mw: int = 700_000
    # None: a card without MIG (the mode query is not supported); a list: MIG positions, None where empty.
    mig: list[Slice | None] | None = None
    mig_enabled: bool = False
    lost: bool = False
    # The card falls off the bus once it has answered this many calls.
    lost_after_calls: int | None = None
    generation: int = 0


@dataclass(frozen=True)
class Profile:
    """A driver release: its version string, the symbols it lacks, and how it lays out v3 process entries."""

    version: str
    absent: frozenset[str] = frozenset()
    wide_v3_entries: bool = False


MODERN = Profile("570.124.06")
R470 = Profile(
    "470.82.01",
    absent=frozenset(
        {
            "nvmlDeviceGetComputeRunningProcesses_v3",
            "nvmlDeviceGetGraphicsRunningProcesses_v3",
            "nvmlDeviceGetMemoryInfo_v2",
            "nvmlDeviceGetTemperatureV",
        }
    ),
)
R450 = Profile(
    "450.80.02",
    absent=R470.absent | {"nvmlDeviceGetComputeRunningProcesses_v2", "nvmlDeviceGetGraphicsRunningProcesses_v2"},
)
R535_54 = Profile("535.54.03", absent=frozenset({"nvmlDeviceGetTemperatureV"}), wide_v3_entries=True)

_HANDLE_BASE = 0x10000


class SimulatedDriver:
    """One host's driver and GPUs. Tests change the GPUs' answers between samples."""

    def __init__(self, gpus: list[Gpu], profile: Profile = MODERN, *, init_result: int = SUCCESS) -> None:
        self.gpus = gpus
        self.profile = profile
        self.init_result = init_result
        self.count_result = SUCCESS
        self.version_result = SUCCESS
        self.handle_results: dict[int, int] = {}
        self.calls: list[str] = []
        self.errors: list[BaseException] = []
        self.inits = 0
        self.shutdowns = 0
        self._handles: dict[int, tuple[Gpu, int, Slice | None]] = {}
        self.library = type("libnvidia_ml", (), {})()
        self._export_all()

    def reset(self, index: int) -> None:
        """A GPU reset: the card answers again, and every handle taken before it is stale."""
        gpu = self.gpus[index]
        gpu.lost = False
        gpu.lost_after_calls = None
        gpu.generation += 1

    # Handles are opaque pointers: the driver hands out numbers and looks them up again.

    def _handle(self, gpu: Gpu, mig: Slice | None = None) -> int:
        token = _HANDLE_BASE + len(self._handles) * 16
        self._handles[token] = (gpu, gpu.generation, mig)
        return token

    def _target(self, token: int | None, symbol: str) -> Answers:
        """The GPU or slice a handle names, or the NVML code it answers with (raised as _Return)."""
        if token not in self._handles:
            raise _Return(INVALID_ARGUMENT)
        gpu, generation, mig = self._handles[token]
        if gpu.lost_after_calls is not None and gpu.calls >= gpu.lost_after_calls:
            gpu.lost = True
        if gpu.lost or generation != gpu.generation:
            raise _Return(GPU_IS_LOST)
        gpu.calls += 1
        target: Answers = mig if mig is not None else gpu
        if symbol in target.fail:
            raise _Return(target.fail[symbol])
        return target

    def _export_all(self) -> None:
        ptr, uint = c_void_p, c_uint
        exports: dict[str, tuple[tuple[Any, ...], Callable[..., int]]] = {
            "nvmlInitWithFlags": ((uint,), self._init),
            "nvmlShutdown": ((), self._shutdown),
            "nvmlSystemGetDriverVersion": ((ptr, uint), self._driver_version),
            "nvmlDeviceGetCount_v2": ((ptr,), self._count),
            "nvmlDeviceGetHandleByIndex_v2": ((uint, ptr), self._handle_by_index),
            "nvmlDeviceGetUUID": ((ptr, ptr, uint), self._string("nvmlDeviceGetUUID", "uuid")),
            "nvmlDeviceGetName": ((ptr, ptr, uint), self._string("nvmlDeviceGetName", "name")),
            "nvmlDeviceGetMemoryInfo": ((ptr, ptr), self._memory),
            "nvmlDeviceGetMemoryInfo_v2": ((ptr, ptr), self._memory_v2),
            "nvmlDeviceGetUtilizationRates": ((ptr, ptr), self._utilization),
            "nvmlDeviceGetTemperature": ((ptr, uint, ptr), self._temperature),
            "nvmlDeviceGetTemperatureV": ((ptr, ptr), self._temperature_v),
            "nvmlDeviceGetPowerUsage": ((ptr, ptr), self._card_uint("nvmlDeviceGetPowerUsage", "power_mw")),
            "nvmlDeviceGetEnforcedPowerLimit": (
                (ptr, ptr),
                self._card_uint("nvmlDeviceGetEnforcedPowerLimit", "power_limit_mw"),
            ),
            "nvmlDeviceGetMigMode": ((ptr, ptr, ptr), self._mig_mode),
            "nvmlDeviceGetMaxMigDeviceCount": ((ptr, ptr), self._max_mig_count),
            "nvmlDeviceGetMigDeviceHandleByIndex": ((ptr, uint, ptr), self._mig_handle),
        }
        for kind in ("Compute", "Graphics"):
            for suffix, entry in (("", ProcessInfoV1), ("_v2", ProcessInfoV2), ("_v3", ProcessInfoV2)):
                if suffix == "_v3" and self.profile.wide_v3_entries:
                    entry = ProcessInfoV3Cc
                symbol = f"nvmlDeviceGet{kind}RunningProcesses{suffix}"
                exports[symbol] = ((ptr, ptr, ptr), self._processes(symbol, kind.lower(), entry))
        for symbol, (argtypes, function) in exports.items():
            if symbol not in self.profile.absent:
                setattr(self.library, symbol, CFUNCTYPE(c_int, *argtypes)(self._guarded(symbol, function)))

    def _guarded(self, symbol: str, function: Callable[..., int]) -> Callable[..., int]:
        def call(*args: Any) -> int:
            self.calls.append(symbol)
            if symbol not in ("nvmlInitWithFlags", "nvmlShutdown") and self.inits <= self.shutdowns:
                return UNINITIALIZED
            try:
                return function(*args)
            except _Return as answer:
                return answer.code
            except BaseException as error:  # a bug in the simulation: the test fixture reports it
                self.errors.append(error)
                return UNKNOWN

        return call

    def _init(self, flags: int) -> int:
        if self.init_result == SUCCESS:
            self.inits += 1
        return self.init_result

    def _shutdown(self) -> int:
        self.shutdowns += 1
        return SUCCESS

    def _driver_version(self, buffer: int, size: int) -> int:
        if self.version_result != SUCCESS:
            return self.version_result
        return _write_string(buffer, size, self.profile.version.encode())

    def _count(self, out: int) -> int:
        if self.count_result != SUCCESS:
            return self.count_result
        c_uint.from_address(out).value = len(self.gpus)
        return SUCCESS

    def _handle_by_index(self, index: int, out: int) -> int:
        if index >= len(self.gpus):
            return INVALID_ARGUMENT
        if index in self.handle_results:
            return self.handle_results[index]
        gpu = self.gpus[index]
        if gpu.lost:
            return GPU_IS_LOST
        c_void_p.from_address(out).value = self._handle(gpu)
        return SUCCESS

    def _string(self, symbol: str, attribute: str) -> Callable[[int, int, int], int]:
        def read(handle: int, buffer: int, size: int) -> int:
            return _write_string(buffer, size, getattr(self._target(handle, symbol), attribute))

        return read

    def _memory(self, handle: int, out: int) -> int:
        target = self._target(handle, "nvmlDeviceGetMemoryInfo")
        # v1 counts what the driver reserves as used.
        used = (target.used_mib + target.reserved_mib) * MIB
        total = target.total_mib * MIB
        _write(out, Memory(total=total, free=total - used, used=used))
        return SUCCESS

    def _memory_v2(self, handle: int, out: int) -> int:
        target = self._target(handle, "nvmlDeviceGetMemoryInfo_v2")
        if c_uint.from_address(out).value != MEMORY_V2_VERSION:
            return ARGUMENT_VERSION_MISMATCH
        total, reserved, used = (target.total_mib * MIB, target.reserved_mib * MIB, target.used_mib * MIB)
        _write(out, MemoryV2(MEMORY_V2_VERSION, total, reserved, total - reserved - used, used))
        return SUCCESS

    def _card(self, handle: int, symbol: str) -> Gpu:
        target = self._target(handle, symbol)
        # MIG slices have no sensors of their own; MIG cards report no utilization.
        if not isinstance(target, Gpu) or (target.mig_enabled and symbol == "nvmlDeviceGetUtilizationRates"):
            raise _Return(NOT_SUPPORTED)
        return target

    def _utilization(self, handle: int, out: int) -> int:
        gpu = self._card(handle, "nvmlDeviceGetUtilizationRates")
        _write(out, Utilization(gpu=gpu.utilization_pct, memory=10))
        return SUCCESS

    def _temperature(self, handle: int, sensor: int, out: int) -> int:
        gpu = self._card(handle, "nvmlDeviceGetTemperature")
        if sensor != 0:
            return INVALID_ARGUMENT
        c_uint.from_address(out).value = gpu.temperature_c
        return SUCCESS

    def _temperature_v(self, handle: int, out: int) -> int:
        gpu = self._card(handle, "nvmlDeviceGetTemperatureV")
        request = TemperatureV1.from_address(out)
        if request.version != TEMPERATURE_V1_VERSION:
            return ARGUMENT_VERSION_MISMATCH
        if request.sensorType != 0:
            return INVALID_ARGUMENT
        request.temperature = gpu.temperature_c
        return SUCCESS

    def _card_uint(self, symbol: str, attribute: str) -> Callable[[int, int], int]:
        def read(handle: int, out: int) -> int:
            c_uint.from_address(out).value = getattr(self._card(handle, symbol), attribute)
            return SUCCESS

        return read

    def _mig_card(self, handle: int, symbol: str) -> tuple[Gpu, list[Slice | None]]:
        gpu = self._card(handle, symbol)
        if gpu.mig is None:
            raise _Return(NOT_SUPPORTED)
        return gpu, gpu.mig

    def _mig_mode(self, handle: int, current: int, pending: int) -> int:
        gpu, _ = self._mig_card(handle, "nvmlDeviceGetMigMode")
        c_uint.from_address(current).value = c_uint.from_address(pending).value = int(gpu.mig_enabled)
        return SUCCESS

    def _max_mig_count(self, handle: int, out: int) -> int:
        _, slices = self._mig_card(handle, "nvmlDeviceGetMaxMigDeviceCount")
        c_uint.from_address(out).value = len(slices)
        return SUCCESS

    def _mig_handle(self, handle: int, index: int, out: int) -> int:
        gpu, slices = self._mig_card(handle, "nvmlDeviceGetMigDeviceHandleByIndex")
        if not gpu.mig_enabled or index >= len(slices):
            return INVALID_ARGUMENT
        mig = slices[index]
        if mig is None:
            return NOT_FOUND
        c_void_p.from_address(out).value = self._handle(gpu, mig)
        return SUCCESS

    def _processes(self, symbol: str, kind: str, entry: type[Structure]) -> Callable[[int, int, int], int]:
        def read(handle: int, count_pointer: int, array: int | None) -> int:
            target = self._target(handle, symbol)
            if isinstance(target, Gpu) and target.mig_enabled:
                # Listing a MIG card's processes from the card takes privileges the tests never have.
                return NO_PERMISSION
            listed: list[Process] = getattr(target, kind)
            count = c_uint.from_address(count_pointer)
            capacity = count.value
            count.value = len(listed)
            if not listed:
                return SUCCESS
            if array is None or capacity < len(listed):
                return INSUFFICIENT_SIZE
            entries = (entry * len(listed))()
            for slot, process in zip(entries, listed, strict=True):
                slot.pid = process.pid
                slot.usedGpuMemory = NOT_AVAILABLE if process.used_mib is None else process.used_mib * MIB
                if hasattr(slot, "gpuInstanceId"):
                    slot.gpuInstanceId, slot.computeInstanceId = process.gpu_instance, process.compute_instance
            ctypes.memmove(array, entries, sizeof(entries))
            return SUCCESS

        return read


class _Return(Exception):
    """Not an error: the code the C function returns."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _write(address: int, struct: Structure) -> None:
    ctypes.memmove(address, ctypes.byref(struct), sizeof(struct))


def _write_string(buffer: int, size: int, value: bytes) -> int:
    if len(value) + 1 > size:
        return INSUFFICIENT_SIZE
    ctypes.memmove(buffer, value + b"\0", len(value) + 1)
    return SUCCESS


def install(monkeypatch: pytest.MonkeyPatch, driver: SimulatedDriver) -> SimulatedDriver:
    """Make the binding talk to `driver` as if it had loaded libnvidia-ml.so.1, until the test ends."""
    monkeypatch.setattr(pynvml, "nvmlLib", driver.library)
    monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer_cache", {})
    monkeypatch.setattr(pynvml, "_nvmlLib_refcount", 0)
    return driver


def no_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host without the driver: the binding cannot load libnvidia-ml.so.1 at all."""

    def cannot_load(*args: object, **kwargs: object) -> None:
        raise OSError("libnvidia-ml.so.1: cannot open shared object file: No such file or directory")

    monkeypatch.setattr(pynvml, "nvmlLib", None)
    monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer_cache", {})
    monkeypatch.setattr(pynvml, "CDLL", cannot_load)
