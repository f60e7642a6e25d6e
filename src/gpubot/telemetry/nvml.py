"""The `nvml` backend: NVIDIA's management library through its own binding (nvidia-ml-py's `pynvml`).

This is the only module that imports pynvml. Every NVML call goes through one choke point,
`NvmlTelemetry._call`: any exception there (an `NVMLError`, the binding's `NVMLLibraryMismatchError`, a
name that is not UTF-8) becomes None for that one field of that one GPU, and each distinct cause is
logged once rather than on every poll. A GPU that reports `GPU is lost`, or whose every field fails, is
listed with `lost=True` and its handle is taken again on the next sample; one that refuses to say who it
is is listed as unreadable. So an unsupported field or one broken card never breaks a sample.

What cannot change while a handle is valid (UUID, name, which versioned calls the driver answers) is read
once per handle. MIG slices are enumerated on every sample, since instances come and go without a reset.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pynvml

from gpubot.core.errors import TelemetryError
from gpubot.core.models import GpuSample, HostSample, ProcessSample
from gpubot.telemetry.host_name import short_hostname
from gpubot.telemetry.nvml_processes import (
    MalformedProcessList,
    ProcessInfoV1,
    ProcessInfoV3Wide,
    RawProcess,
    as_int,
    mib,
    mig_profile,
    process_samples,
    read_process_list,
    writes_wide_v3_entries,
)
from gpubot.telemetry.process_owner import PROC_ROOT

_log = logging.getLogger(__name__)

_T = TypeVar("_T")
_NO_PERMISSION = pynvml.NVML_ERROR_NO_PERMISSION
_NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
_FUNCTION_NOT_FOUND = pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
# How a driver says it lacks a versioned call: the symbol is missing, or the struct version is refused.
_VERSION_REFUSALS = frozenset(
    {
        _FUNCTION_NOT_FOUND,
        _NOT_SUPPORTED,
        pynvml.NVML_ERROR_INVALID_ARGUMENT,
        getattr(pynvml, "NVML_ERROR_ARGUMENT_VERSION_MISMATCH", 25),
    }
)
_NO_MIG = frozenset({_NOT_SUPPORTED, _FUNCTION_NOT_FOUND})


@dataclass
class _Reading:
    """What the choke point learnt about one GPU or slice (gpu None: the host) during one sample."""

    where: str
    calls: int = 0
    failures: int = 0
    lost: bool = False
    last_failure: Exception | None = None


@dataclass
class _Card:
    """One GPU index: its handle and what was read once for it; uuid and name outlive a lost handle."""

    index: int
    handle: Any = None
    uuid: str | None = None
    name: str | None = None
    constants_read: bool = False
    memory_v1_only: set[int | None] = field(default_factory=set)
    temperature_v1_only: bool = False
    mig_capable: bool = True
    mig_slots: int | None = None
    slice_names: dict[str, str | None] = field(default_factory=dict)
    # The slices of the last sample, kept so a card that is lost still lists them (their claims name them).
    slices: tuple[GpuSample, ...] = ()

    def forget_handle(self) -> None:
        self.handle = None
        self.constants_read = False
        self.memory_v1_only.clear()
        self.temperature_v1_only = False
        self.mig_capable = True
        self.mig_slots = None


class NvmlTelemetry:
    """Telemetry read straight from NVML, the library nvidia-smi itself is built on."""

    backend_name = "nvml"

    def __init__(self, proc_root: Path = PROC_ROOT) -> None:
        """Initialise NVML and count the GPUs.

        NVML counts its initialisations, so each instance's `close()` undoes exactly its own.

        Args:
            proc_root: Where procfs is mounted, to name processes and find their owners.

        Raises:
            TelemetryError: the NVML library is missing or does not initialise (no driver, no GPU).
        """
        self._proc_root = proc_root
        self._hostname = short_hostname()
        self._logged: set[tuple[str, str, object]] = set()
        self._listings: dict[str, tuple[Callable[..., int], type[Any]]] = {}
        self._closed = False
        try:
            pynvml.nvmlInit()
        except (pynvml.NVMLError, OSError) as error:
            raise TelemetryError(f"NVML could not be initialised: {error}.") from error
        try:
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as error:
            # The count's error is the one worth reporting; a failing shutdown on top of it adds nothing.
            with contextlib.suppress(pynvml.NVMLError):
                pynvml.nvmlShutdown()
            raise TelemetryError(f"NVML could not count the GPUs: {error}.") from error
        self._cards = [_Card(index) for index in range(count)]
        # Which process-list layout the driver writes depends on its release, which cannot change under us.
        self._driver_at_start = _text(self._call(_Reading("host"), "driver version", pynvml.nvmlSystemGetDriverVersion))

    def sample(self) -> HostSample:
        """Read every GPU, and every MIG slice, once.

        Raises:
            TelemetryError: the backend was closed.
        """
        if self._closed:
            raise TelemetryError("The NVML backend has been closed.")
        host = _Reading("host")
        count = self._call(host, "device count", pynvml.nvmlDeviceGetCount)
        # Handles stay valid while the set of GPUs is the same; a count that changed means a GPU came or went.
        if count is not None and count != len(self._cards):
            self._cards = [_Card(index) for index in range(count)]
        driver_version = _text(self._call(host, "driver version", pynvml.nvmlSystemGetDriverVersion))
        return HostSample(
            hostname=self._hostname,
            driver_version=driver_version,
            gpus=tuple(sample for card in self._cards for sample in self._card_samples(card)),
        )

    def close(self) -> None:
        """Shut NVML down (once; later calls do nothing)."""
        if self._closed:
            return
        self._closed = True
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError as error:
            # Nothing is left to release and the process is usually exiting; failing the shutdown would
            # only hide whatever made the caller close us.
            _log.warning("NVML shutdown failed: %s", error)

    def _card_samples(self, card: _Card) -> list[GpuSample]:
        reading = _Reading(f"GPU {card.index}")
        if card.handle is None:
            # Taken apart from the fields: a handle alone does not make a card that answers.
            acquiring = _Reading(reading.where)
            card.handle = self._call(acquiring, "handle", pynvml.nvmlDeviceGetHandleByIndex, card.index)
            if card.handle is None:
                return self._unanswered(card, acquiring)
        handle = card.handle
        uuid_failure: Exception | None = None
        if not card.constants_read:
            uuid = _text(self._call(reading, "uuid", pynvml.nvmlDeviceGetUUID, handle))
            uuid_failure = reading.last_failure
            name = _text(self._call(reading, "name", pynvml.nvmlDeviceGetName, handle))
            if uuid is not None:
                card.uuid, card.name, card.constants_read = uuid, name or card.name, True
            else:
                card.name = name or card.name
        memory = self._call(reading, "memory", self._memory, card, None, handle)
        utilization = self._call(reading, "utilization", pynvml.nvmlDeviceGetUtilizationRates, handle)
        temperature_c = self._call(reading, "temperature", self._temperature, card, handle)
        power_draw_mw = self._call(reading, "power draw", pynvml.nvmlDeviceGetPowerUsage, handle)
        power_limit_mw = self._call(reading, "power limit", pynvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        mig_enabled = self._mig_enabled(reading, card)
        if mig_enabled:
            slices = self._slices(reading, card)
            processes = tuple(process for piece in slices for process in piece.processes)
            processes_unknown = next((s.processes_unknown for s in slices if s.processes_unknown), None)
        else:
            slices = []
            processes, processes_unknown = self._processes(reading, handle, graphics=True)
        if reading.lost or reading.failures == reading.calls:
            return self._unanswered(card, reading)
        unreadable = None
        if not card.constants_read:
            unreadable = _unreadable(uuid_failure)
        card.slices = tuple(slices)
        return [
            GpuSample(
                index=card.index,
                uuid=(card.uuid if card.constants_read else None) or self._placeholder(card.index),
                name=card.name,
                memory_total_mib=mib(getattr(memory, "total", None)),
                memory_used_mib=mib(getattr(memory, "used", None)),
                utilization_gpu_pct=as_int(getattr(utilization, "gpu", None)),
                temperature_c=as_int(temperature_c),
                power_draw_w=_watts(power_draw_mw),
                power_limit_w=_watts(power_limit_mw),
                processes=processes,
                unreadable=unreadable,
                processes_unknown=processes_unknown,
                mig_enabled=mig_enabled,
            ),
            *slices,
        ]

    def _unanswered(self, card: _Card, reading: _Reading) -> list[GpuSample]:
        """A card that gave nothing: refused (no permission), or lost; its handle is taken again next time."""
        failure = reading.last_failure
        if not reading.lost and _code(failure) == _NO_PERMISSION:
            known = card.uuid if card.constants_read else None
            return [
                GpuSample(index=card.index, uuid=known or self._placeholder(card.index), unreadable="no permission")
            ]
        card.forget_handle()
        lost_slices = tuple(
            GpuSample(
                index=s.index,
                uuid=s.uuid,
                name=s.name,
                lost=True,
                mig_index=s.mig_index,
                parent_uuid=s.parent_uuid,
                mig_profile=s.mig_profile,
            )
            for s in card.slices
        )
        return [
            GpuSample(
                index=card.index,
                uuid=card.uuid or self._placeholder(card.index),
                name=card.name,
                lost=True,
                mig_enabled=bool(lost_slices),
            ),
            *lost_slices,
        ]

    def _placeholder(self, index: int, mig_index: int | None = None) -> str:
        where = str(index) if mig_index is None else f"{index}.{mig_index}"
        return f"nvml-unknown-{self._hostname}-{where}"

    def _mig_enabled(self, reading: _Reading, card: _Card) -> bool:
        if not card.mig_capable:
            return False
        mode = self._call(reading, "MIG mode", pynvml.nvmlDeviceGetMigMode, card.handle, answers=_NO_MIG)
        if mode is None:
            # A card without MIG says so once; it does not grow MIG while its handle lives.
            card.mig_capable = _code(reading.last_failure) not in _NO_MIG
            return False
        return bool(mode[0] == pynvml.NVML_DEVICE_MIG_ENABLE)

    def _slices(self, reading: _Reading, card: _Card) -> list[GpuSample]:
        if card.mig_slots is None:
            card.mig_slots = self._call(reading, "MIG slots", pynvml.nvmlDeviceGetMaxMigDeviceCount, card.handle)
        slices = []
        for position in range(card.mig_slots or 0):
            handle = self._call(
                reading,
                "MIG slice",
                pynvml.nvmlDeviceGetMigDeviceHandleByIndex,
                card.handle,
                position,
                answers=frozenset({pynvml.NVML_ERROR_NOT_FOUND}),
            )
            if handle is not None:
                slices.append(self._slice(reading, card, position, handle))
        return slices

    def _slice(self, card_reading: _Reading, card: _Card, position: int, handle: Any) -> GpuSample:
        reading = _Reading(f"GPU {card.index}.{position}")
        uuid = _text(self._call(reading, "uuid", pynvml.nvmlDeviceGetUUID, handle))
        unreadable = None if uuid is not None else _unreadable(reading.last_failure)
        if uuid is not None and uuid not in card.slice_names:
            card.slice_names[uuid] = _text(self._call(reading, "name", pynvml.nvmlDeviceGetName, handle))
        name = card.slice_names.get(uuid) if uuid is not None else None
        memory = self._call(reading, "memory", self._memory, card, position, handle)
        # Graphics contexts cannot run on a MIG slice, and NVML has no utilization for one.
        processes, processes_unknown = self._processes(reading, handle, graphics=False)
        card_reading.lost = card_reading.lost or reading.lost
        return GpuSample(
            index=card.index,
            uuid=uuid or self._placeholder(card.index, position),
            name=name,
            memory_total_mib=mib(getattr(memory, "total", None)),
            memory_used_mib=mib(getattr(memory, "used", None)),
            processes=processes,
            lost=reading.lost,
            unreadable=unreadable,
            processes_unknown=processes_unknown,
            mig_index=position,
            parent_uuid=card.uuid,
            mig_profile=mig_profile(name),
        )

    def _memory(self, card: _Card, position: int | None, handle: Any) -> Any:
        """Memory through the v2 struct, where `used` leaves out what the driver reserves; v1 otherwise."""
        if position not in card.memory_v1_only:
            try:
                return pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
            except pynvml.NVMLError as error:
                if error.value not in _VERSION_REFUSALS:
                    raise
            # Remembered so the refused call is not repeated on every poll.
            card.memory_v1_only.add(position)
        return pynvml.nvmlDeviceGetMemoryInfo(handle)

    def _temperature(self, card: _Card, handle: Any) -> Any:
        """The versioned temperature call where binding and driver have it; the deprecated one otherwise."""
        versioned = getattr(pynvml, "nvmlDeviceGetTemperatureV", None)
        if versioned is not None and not card.temperature_v1_only:
            try:
                return versioned(handle, pynvml.NVML_TEMPERATURE_GPU)
            except pynvml.NVMLError as error:
                if error.value not in _VERSION_REFUSALS:
                    raise
            card.temperature_v1_only = True
        return pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)

    def _processes(
        self, reading: _Reading, handle: Any, *, graphics: bool
    ) -> tuple[tuple[ProcessSample, ...], str | None]:
        """The processes on a GPU or slice, and why the list is incomplete (None: it is complete)."""
        listings: list[list[RawProcess]] = []
        unknown = None
        for kind in ("Compute", "Graphics") if graphics else ("Compute",):
            listed = self._call(reading, f"{kind.lower()} processes", self._list_processes, kind, handle)
            if listed is not None:
                listings.append(listed)
            # A card that cannot run graphics has no graphics processes to list.
            elif not (kind == "Graphics" and _code(reading.last_failure) == _NOT_SUPPORTED):
                unknown = unknown or _processes_unknown(reading.last_failure)
        return process_samples(listings, self._proc_root), unknown

    def _list_processes(self, kind: str, handle: Any) -> list[RawProcess]:
        if kind not in self._listings:
            self._listings[kind] = self._listing(kind)
        function, entry = self._listings[kind]
        return read_process_list(function, handle, entry, pynvml._nvmlCheckReturn)

    def _listing(self, kind: str) -> tuple[Callable[..., int], type[Any]]:
        """The newest process-list C function this driver exports, with the entry layout it writes."""
        v2_entry = pynvml.c_nvmlProcessInfo_v2_t
        v3_entry = ProcessInfoV3Wide if writes_wide_v3_entries(self._driver_at_start) else v2_entry
        for suffix, entry in (("_v3", v3_entry), ("_v2", v2_entry), ("", ProcessInfoV1)):
            with contextlib.suppress(pynvml.NVMLError_FunctionNotFound):
                return pynvml._nvmlGetFunctionPointer(f"nvmlDeviceGet{kind}RunningProcesses{suffix}"), entry
        raise pynvml.NVMLError(_FUNCTION_NOT_FOUND)

    def _call(
        self,
        reading: _Reading,
        field: str,
        query: Callable[..., _T],
        *args: Any,
        answers: frozenset[int] = frozenset(),
    ) -> _T | None:
        """The choke point: run one query; any exception makes that field None and is logged once.

        An NVML code in `answers` is an answer, not a failure (e.g. "not found" for an empty MIG slot):
        it also gives None, but is neither counted nor logged.
        """
        if reading.lost:
            # After "GPU is lost" every query on the handle fails the same way, sometimes slowly.
            return None
        reading.last_failure = None
        try:
            result = query(*args)
        # The binding raises more than NVMLError (NVMLLibraryMismatchError, UnicodeDecodeError on a name),
        # and one field must never take a whole sample, or `gpubot serve`, down with it.
        except Exception as error:
            reading.last_failure = error
            code = _code(error)
            if code in answers:
                return None
            reading.calls += 1
            reading.failures += 1
            if code == pynvml.NVML_ERROR_GPU_IS_LOST:
                reading.lost = True
            cause = (reading.where, field, code if code is not None else f"{type(error).__name__}: {error}")
            if cause not in self._logged:
                self._logged.add(cause)
                _log.warning(
                    "NVML: %s of %s is unavailable (%s); shown as n/a, logged once.", field, reading.where, error
                )
            return None
        reading.calls += 1
        return result


def _code(error: Exception | None) -> int | None:
    value = getattr(error, "value", None) if isinstance(error, pynvml.NVMLError) else None
    return value if isinstance(value, int) else None


def _unreadable(failure: Exception | None) -> str:
    if _code(failure) == _NO_PERMISSION:
        return "no permission"
    return f"its UUID could not be read ({failure})"


def _processes_unknown(failure: Exception | None) -> str:
    code = _code(failure)
    if code == _NO_PERMISSION:
        return "no permission to list processes"
    if code == _NOT_SUPPORTED:
        return "the driver does not list processes here"
    if isinstance(failure, MalformedProcessList):
        return str(failure)
    return f"the process list could not be read ({failure})"


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _watts(milliwatts: object) -> float | None:
    number = as_int(milliwatts)
    return number / 1000.0 if number is not None else None
