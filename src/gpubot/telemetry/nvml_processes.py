"""NVML's process lists at the C level: which entry layout a driver writes, and the two-call protocol.

The binding's `nvmlDeviceGet*RunningProcesses` wrappers call only the `_v3` C functions and assume their
24-byte entries. Drivers before 510 have no `_v3` (nor, before 470, `_v2`), and 535.43 to 535.86 write
32-byte `_v3` entries into the binding's 24-byte slots, which reads as PID 0 and absurd memory. So
`gpubot.telemetry.nvml` picks the C function and the entry layout per driver and reads them here.
Nothing here imports the binding: it is given the C function pointer and its return-code check.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable, Iterable
from ctypes import Structure, c_uint, c_ulonglong
from pathlib import Path
from typing import Any, NamedTuple

from gpubot.core.models import ProcessSample
from gpubot.telemetry.process_owner import process_name, process_owner

_SUCCESS = 0
_BYTES_PER_MIB = 1024 * 1024
_INSUFFICIENT_SIZE = 7
_NOT_AVAILABLE_ULL = 2**64 - 1
# What a PID can never be: a garbage entry from a layout mismatch reads as one of these.
_IMPOSSIBLE_PIDS = frozenset({0, 0xFFFFFFFF})
# Driver releases whose `_v3` entries carry `usedGpuCcProtectedMemory`.
_WIDE_V3_RELEASES = (535, range(43, 87))


class ProcessInfoV1(Structure):
    """`nvmlProcessInfo_v1_t`: what the unversioned calls of drivers before 470 write."""

    _fields_ = (("pid", c_uint), ("usedGpuMemory", c_ulonglong))


class ProcessInfoV3Wide(Structure):
    """`nvmlProcessInfo_v3_t` as drivers 535.43 to 535.86 write it: 32 bytes."""

    _fields_ = (
        ("pid", c_uint),
        ("usedGpuMemory", c_ulonglong),
        ("gpuInstanceId", c_uint),
        ("computeInstanceId", c_uint),
        ("usedGpuCcProtectedMemory", c_ulonglong),
    )


class MalformedProcessList(Exception):
    """The driver's process list holds entries no process can have (a struct layout mismatch)."""


class RawProcess(NamedTuple):
    """One entry of a process list: memory in bytes (None: not available); instance ids on MIG only."""

    pid: int
    used_bytes: int | None
    gpu_instance: int | None = None
    compute_instance: int | None = None


def writes_wide_v3_entries(driver_version: str | None) -> bool:
    """Whether this driver writes 32-byte `_v3` process entries.

    Args:
        driver_version: As NVML reports it, e.g. "535.54.03"; None when unknown.

    Returns:
        True for 535.43 to 535.86; False otherwise, including an unknown or unparsable version.
    """
    match = re.match(r"(\d+)\.(\d+)", driver_version or "")
    if match is None:
        return False
    major, minor = int(match.group(1)), int(match.group(2))
    return major == _WIDE_V3_RELEASES[0] and minor in _WIDE_V3_RELEASES[1]


def read_process_list(
    function: Callable[..., int], handle: Any, entry: type[Structure], check_return: Callable[[int], object]
) -> list[RawProcess]:
    """Call one `nvmlDeviceGet*RunningProcesses*` C function the way NVML asks: size, then fill.

    Args:
        function: The C function pointer.
        handle: The device (or MIG device) handle.
        entry: The entry layout this driver writes for this function.
        check_return: Raises the binding's error for a return code other than success.

    Returns:
        The processes listed.

    Raises:
        MalformedProcessList: an entry has an impossible PID.
    """
    count = c_uint(0)
    result = function(handle, ctypes.byref(count), None)
    if result == _SUCCESS:
        return []
    if result != _INSUFFICIENT_SIZE:
        check_return(result)
    # Room for processes that start between the two calls.
    count.value = count.value * 2 + 5
    entries = (entry * count.value)()
    check_return(function(handle, ctypes.byref(count), entries))
    listed = [_raw(entries[position]) for position in range(count.value)]
    impossible = sorted({process.pid for process in listed} & _IMPOSSIBLE_PIDS)
    if impossible:
        raise MalformedProcessList(f"the driver's process list is malformed (PID {impossible[0]})")
    return listed


def _raw(entry: Any) -> RawProcess:
    used = entry.usedGpuMemory
    return RawProcess(
        pid=entry.pid,
        used_bytes=None if used == _NOT_AVAILABLE_ULL else used,
        gpu_instance=getattr(entry, "gpuInstanceId", None),
        compute_instance=getattr(entry, "computeInstanceId", None),
    )


def mig_profile(name: str | None) -> str | None:
    """The MIG profile in a MIG device's name: "NVIDIA A100-SXM4-40GB MIG 1g.5gb" gives "1g.5gb".

    Args:
        name: The MIG device's name as NVML reports it.

    Returns:
        The profile, or None when the name carries none.
    """
    match = re.search(r"\bMIG\s+(\S+)\s*$", name or "")
    return match.group(1) if match else None


def process_samples(listings: Iterable[list[RawProcess]], proc_root: Path) -> tuple[ProcessSample, ...]:
    """The processes of a GPU's listings (compute, graphics), one per PID, named and owned from /proc.

    Args:
        listings: What each process-list call returned.
        proc_root: Where procfs is mounted.

    Returns:
        One sample per PID, in the order first listed.
    """
    used_bytes_by_pid: dict[int, int | None] = {}
    for listed in listings:
        for process in listed:
            # A C+G process is in both lists; keep whichever listing knows its memory.
            if used_bytes_by_pid.get(process.pid) is None:
                used_bytes_by_pid[process.pid] = process.used_bytes
    return tuple(
        ProcessSample(
            pid=pid,
            name=process_name(pid, proc_root),
            used_memory_mib=mib(used),
            user=process_owner(pid, proc_root),
        )
        for pid, used in used_bytes_by_pid.items()
    )


def as_int(value: object) -> int | None:
    """An integer the binding returned, or None for anything else (bool included)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def mib(value_bytes: object) -> int | None:
    """Bytes as whole MiB; None when unknown."""
    number = as_int(value_bytes)
    return number // _BYTES_PER_MIB if number is not None else None
