"""Who owns a GPU process and what it is called, read from /proc.

NVML and nvidia-smi report only a PID; the user behind it is what people on a shared box want to see.
"""

from __future__ import annotations

import pwd
from pathlib import Path

PROC_ROOT = Path("/proc")


def process_owner(pid: int, proc_root: Path = PROC_ROOT) -> str | None:
    """The user name that owns a process, from the real UID in /proc/<pid>/status.

    Args:
        pid: The process id.
        proc_root: Where procfs is mounted (a temporary tree in tests).

    Returns:
        The user name; the numeric UID as a string when the UID has no passwd entry (a container user,
        an LDAP account the host cannot resolve); None when the process is gone or its status is
        unreadable or malformed.
    """
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
            try:
                return pwd.getpwuid(uid).pw_name
            except KeyError:
                return str(uid)
    return None


def process_name(pid: int, proc_root: Path = PROC_ROOT) -> str | None:
    """The short command name of a process, from /proc/<pid>/comm.

    Args:
        pid: The process id.
        proc_root: Where procfs is mounted (a temporary tree in tests).

    Returns:
        The name (at most 15 characters, as the kernel keeps it), or None when the process is gone.
    """
    try:
        name = (proc_root / str(pid) / "comm").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    return name or None
