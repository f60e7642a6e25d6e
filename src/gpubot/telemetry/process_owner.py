"""Who owns a GPU process and what it is called, read from /proc.

NVML and nvidia-smi report only a PID, and always the host's PID; the user behind it is what people on a
shared box want to see. Both are read from this process's own /proc, which is only right where gpubot
shares the host's PID namespace: in a container's own PID namespace a host PID names no process here or,
worse, a different one. In a user namespace, UIDs the namespace does not map all read as the overflow UID
(`nobody`). So the namespaces are looked at once (`namespaces`), and owners and names that would be wrong
are reported as unknown instead.
"""

from __future__ import annotations

import functools
import os
import pwd
import re
from dataclasses import dataclass
from pathlib import Path

PROC_ROOT = Path("/proc")

# The inode of the initial (host) PID namespace, PROC_PID_INIT_INO in the kernel: /proc/self/ns/pid reads
# "pid:[4026531836]" there and only there.
HOST_PID_NAMESPACE_INODE = 0xEFFFFFFC
# The initial user namespace maps every UID to itself.
_IDENTITY_UID_MAP = ["0", "0", "4294967295"]
_DEFAULT_OVERFLOW_UID = 65534
_NAMESPACE_LINK = re.compile(r"pid:\[(\d+)\]")


@dataclass(frozen=True)
class Namespaces:
    """Where this process sits: None where it cannot tell (an old kernel, a /proc it may not read)."""

    host_pids: bool | None
    user_namespace: bool | None
    overflow_uid: int = _DEFAULT_OVERFLOW_UID

    @property
    def finding(self) -> str | None:
        """What is wrong with the process owners shown, in a sentence; None when nothing is (or it cannot tell)."""
        if self.host_pids is False:
            return (
                "gpubot runs in a PID namespace of its own (a container): the GPUs report the host's PIDs, so "
                "process owners and names are shown as unknown"
            )
        if self.user_namespace:
            return (
                "gpubot runs in a user namespace: owners whose UIDs it does not map (they read as nobody) are "
                "shown as unknown"
            )
        return None

    @property
    def remedy(self) -> str:
        """What to do about the finding."""
        return "run gpubot on the host, or start its container with --pid=host and without a user namespace"

    @property
    def warning(self) -> str | None:
        """The finding and its remedy, for the log; None when there is nothing to say."""
        finding = self.finding
        return f"{finding}; {self.remedy}." if finding else None


@functools.lru_cache(maxsize=16)
def namespaces(proc_root: Path = PROC_ROOT) -> Namespaces:
    """Look, once per proc root, at the PID and user namespaces this process runs in.

    Args:
        proc_root: Where procfs is mounted (a temporary tree in tests).

    Returns:
        What was found; a namespace it cannot read is None (then owners are read as before).
    """
    return Namespaces(
        host_pids=_in_host_pid_namespace(proc_root),
        user_namespace=_in_user_namespace(proc_root),
        overflow_uid=_overflow_uid(proc_root),
    )


def host_pids_visible(proc_root: Path = PROC_ROOT) -> bool:
    """Whether a PID the GPUs report names the same process in this /proc (True when it cannot tell)."""
    return namespaces(proc_root).host_pids is not False


def process_owner(pid: int, proc_root: Path = PROC_ROOT) -> str | None:
    """The user name that owns a process, from the real UID in /proc/<pid>/status.

    Args:
        pid: The process id (the host's, as NVML and nvidia-smi report it).
        proc_root: Where procfs is mounted (a temporary tree in tests).

    Returns:
        The user name; the numeric UID as a string when the UID has no passwd entry (a container user,
        an LDAP account the host cannot resolve); None when the process is gone, its status is unreadable
        or malformed, this process is in another PID namespace, or the UID is one a user namespace does
        not map.
    """
    seen = namespaces(proc_root)
    if seen.host_pids is False:
        return None
    try:
        status = (proc_root / str(pid) / "status").read_text(encoding="utf-8", errors="replace")
    except OSError:
        # The process exited between the GPU listing and now, or it is hidden from us (hidepid=).
        return None
    for line in status.splitlines():
        if line.startswith("Uid:"):
            fields = line.split()
            # "Uid:  real  effective  saved  filesystem": the real UID is who started the process.
            if len(fields) < 2 or not fields[1].isdigit():
                return None
            uid = int(fields[1])
            if seen.user_namespace and uid == seen.overflow_uid:
                return None
            try:
                return pwd.getpwuid(uid).pw_name
            except KeyError:
                return str(uid)
    return None


def process_name(pid: int, proc_root: Path = PROC_ROOT) -> str | None:
    """The short command name of a process, from /proc/<pid>/comm.

    Args:
        pid: The process id (the host's, as NVML and nvidia-smi report it).
        proc_root: Where procfs is mounted (a temporary tree in tests).

    Returns:
        The name (at most 15 characters, as the kernel keeps it), or None when the process is gone or this
        process is in another PID namespace.
    """
    if not host_pids_visible(proc_root):
        return None
    try:
        name = (proc_root / str(pid) / "comm").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    return name or None


def _in_host_pid_namespace(proc_root: Path) -> bool | None:
    link = proc_root / "self" / "ns" / "pid"
    try:
        # The link's text ("pid:[4026531836]") is the namespace's inode; tests can fake it with a symlink.
        found = _NAMESPACE_LINK.fullmatch(os.readlink(link))
        inode = int(found[1]) if found else os.stat(link).st_ino
    except OSError:
        return None
    return inode == HOST_PID_NAMESPACE_INODE


def _in_user_namespace(proc_root: Path) -> bool | None:
    try:
        lines = (proc_root / "self" / "uid_map").read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return None
    return [line.split() for line in lines if line.strip()] != [_IDENTITY_UID_MAP]


def _overflow_uid(proc_root: Path) -> int:
    try:
        text = (proc_root / "sys" / "kernel" / "overflowuid").read_text(encoding="ascii").strip()
    except OSError:
        return _DEFAULT_OVERFLOW_UID
    return int(text) if text.isdigit() else _DEFAULT_OVERFLOW_UID
