"""GPU figures and states as people read them, written once for Slack and the terminal.

Numbers ("n/a" for what a GPU cannot report), load badges, the top processes of a GPU, an unclaimed GPU's
state, and the date format.

Pure: each surface passes in how it writes one process, and escapes or cleans what it needs to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from gpubot.core.dashboard import GpuRow
from gpubot.core.load import Availability, GpuUse, LoadLevel
from gpubot.core.models import Gpu, GpuSample, ProcessSample

LOAD_BADGES = {
    LoadLevel.HIGH: "🔥",
    LoadLevel.ACTIVE: "⚡",
    LoadLevel.IDLE: "💤",
    LoadLevel.UNKNOWN: "❔",
    LoadLevel.LOST: "⚠️",
}
PROCESSES_SHOWN = 5
# E.g. "Tue 14 May 16:00 CEST": the terminal's times, and Slack's fallback where a date token cannot render.
_DATE_FORMAT = "%a %d %b %H:%M %Z"


def when(moment: datetime, timezone: ZoneInfo) -> str:
    """A moment in the host's time zone, e.g. "Tue 14 May 16:00 CEST"."""
    return moment.astimezone(timezone).strftime(_DATE_FORMAT)


def load_legend() -> str:
    """Every badge with its meaning, e.g. "🔥 high load · ⚡ active · …"."""
    return " · ".join(f"{LOAD_BADGES[level]} {level.value}" for level in LoadLevel)


def process_lines(processes: Sequence[ProcessSample], line: Callable[[ProcessSample], str]) -> list[str]:
    """The processes holding the most memory, one `line` each, then "…and N more processes" for the rest."""
    ordered = sorted(processes, key=lambda process: process.used_memory_mib or 0, reverse=True)
    lines = [line(process) for process in ordered[:PROCESSES_SHOWN]]
    if len(ordered) > PROCESSES_SHOWN:
        lines.append(f"…and {len(ordered) - PROCESSES_SHOWN} more processes")
    return lines


def free_state(use: GpuUse, clean: Callable[[str], str], mark: Callable[[str], str] = str) -> str:
    """An unclaimed GPU's state in words, one wording for every surface.

    "free", "free, but in use by alice's process python (pid 4242)", "free, processes n/a (no permission)"
    (its process list is unknown, so it may not be idle), "unreadable (no permission)" or "not responding".

    Args:
        use: what telemetry says of the GPU.
        clean: how the surface makes the description of whose work it is safe to show (process and user names
            come from the host): Slack escapes it, the terminal drops control characters.
        mark: how the surface sets off the state itself (Slack makes it bold); as is by default.

    Remembered with `use` for the same `clean` and `mark`, so a surface should pass the same functions
    every time, not a new lambda.
    """
    key = ("free_state", clean, mark)
    text = use.rendered.get(key)
    if text is None:
        if use.not_responding:
            text = mark("not responding")
        elif use.availability is Availability.UNREADABLE:
            text = f"{mark('unreadable')} ({clean(use.reason or 'no reason given')})"
        elif use.in_use:
            text = f"{mark('free, but in use')} by {clean(use.description())}"
        elif use.reason is not None:
            text = f"{mark('free, processes n/a')} ({clean(use.reason)})"
        else:
            text = mark("free")
        use.rendered[key] = text
    return text


def model(gpu: Gpu) -> str:
    """A GPU's model as people read it, its MIG profile for a slice: "H100", "MIG 1g.10gb"."""
    if gpu.is_slice:
        return f"MIG {gpu.mig_profile or 'slice'}"
    return gpu.name or "unknown model"


def covered_state(row: GpuRow, person: Callable[[str], str]) -> str | None:
    """Who holds a GPU through its card or slices, in words; None when nobody does.

    E.g. "taken with GPU 0 by alice" (a slice of a claimed card) or "slice 0.2 held by bob" (a MIG card).
    """
    claim = row.covered_by
    if claim is None:
        return None
    if row.gpu.is_slice:
        return f"taken with GPU {claim.label} by {person(claim.user_id)}"
    return f"slice {claim.label} held by {person(claim.user_id)}"


def processes_unknown(sample: GpuSample) -> str | None:
    """Say "processes n/a (no permission)" for a GPU whose process list could not be read; None otherwise."""
    if sample.processes_unknown is None:
        return None
    return f"processes n/a ({sample.processes_unknown})"


def percent(value: float | None) -> str:
    """A percentage rounded to a whole number, e.g. "87 %"."""
    return "n/a" if value is None else f"{value:.0f} %"


def mib(value: int | None) -> str:
    """An amount of memory with thousands separators, e.g. "8,300 MiB"."""
    return "n/a" if value is None else f"{value:,} MiB"


def temperature(sample: GpuSample) -> str:
    """The GPU's temperature, e.g. "64 °C"."""
    return "n/a" if sample.temperature_c is None else f"{sample.temperature_c} °C"


def memory(sample: GpuSample) -> str:
    """`8,300 / 81,559 MiB (10 %)`."""
    used, total = sample.memory_used_mib, sample.memory_total_mib
    if used is None and total is None:
        return "n/a"
    used_text = "n/a" if used is None else f"{used:,}"
    total_text = "n/a" if total is None else f"{total:,} MiB"
    return f"{used_text} / {total_text} ({percent(sample.memory_used_pct)})"


def power(sample: GpuSample) -> str:
    """`450 / 700 W` (draw / limit)."""
    draw, limit = sample.power_draw_w, sample.power_limit_w
    if draw is None and limit is None:
        return "n/a"
    draw_text = "n/a" if draw is None else f"{draw:.0f}"
    limit_text = "n/a" if limit is None else f"{limit:.0f}"
    return f"{draw_text} / {limit_text} W"
