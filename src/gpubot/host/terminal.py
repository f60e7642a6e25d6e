"""Plain-text renderings for a terminal: the host commands' tables and error lines.

Pure functions from state to strings; no I/O. Text people typed (a claim's purpose) can hold terminal
control sequences, so it passes through `printable()` before it reaches a line.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from gpubot.core import figures
from gpubot.core.dashboard import Dashboard, Fleet
from gpubot.core.durations import format_duration
from gpubot.core.errors import ConfigError, GpubotError, NoDatabase, NotHolder
from gpubot.core.figures import LOAD_BADGES, when
from gpubot.core.fleet import address
from gpubot.core.load import GpuUse, LoadThresholds, load_level
from gpubot.core.models import Claim, Gpu, GpuSample, HostSample

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with control characters (ANSI escapes, carriage returns) made visible as '?'."""
    return _CONTROL.sub("?", text.replace("\n", " ").replace("\t", " "))


# --- host commands -----------------------------------------------------------------------------------


def error_text(error: GpubotError, names: Mapping[str, str] | None = None) -> str:
    """A refusal or failure as the host commands print it: people by name and ID, hints as `gpubot …`."""
    names = names or {}
    if isinstance(error, ConfigError):
        return f"{error.variable}: expected {error.expected}"
    if isinstance(error, NoDatabase):
        return f"{error.message}: start the service, or run `gpubot db upgrade` as its user"
    if isinstance(error, NotHolder):
        return f"GPU {error.gpu_label} is claimed by {person(error.holder_id, names)}, not by you."
    return printable(error.message)


def person(user_id: str, names: Mapping[str, str]) -> str:
    """A Slack user as a terminal shows them: "alice (U0ALICE)", or the bare ID when no name is known."""
    name = names.get(user_id)
    return printable(f"{name} ({user_id})" if name else user_id)


def render_status(dashboard: Dashboard, timezone: ZoneInfo, names: Mapping[str, str]) -> str:
    """Every GPU, free or held: by whom (`names` by user ID), until when and for what (`gpubot status`)."""
    total = len(dashboard.rows)
    caveats = [
        f"{count} {what}"
        for count, what in (
            (dashboard.free_in_use_count, "in use without a claim"),
            (dashboard.free_not_responding_count, "not responding"),
            (dashboard.free_unreadable_count, "unreadable"),
        )
        if count
    ]
    title = f"GPUs on {printable(dashboard.host)}: {dashboard.free_count} of {total} free"
    title += f" ({', '.join(caveats)})" if caveats else ""
    if not dashboard.rows:
        title = f"GPUs on {printable(dashboard.host)}: none found"
    if not dashboard.online:
        title += f"; {_offline(dashboard, timezone)}, so its GPUs cannot be newly claimed"
    if not dashboard.rows:
        return title
    rows = []
    for row in dashboard.rows:
        lost = " (not responding)" if row.use.not_responding else ""
        model = printable(figures.model(row.gpu))
        claim = row.claim
        covered = figures.covered_state(row, lambda user_id: person(user_id, names))
        if claim is None:
            rows.append([_label(row.gpu), model, covered or figures.free_state(row.use, printable), "", ""])
        else:
            left = format_duration(claim.time_left(dashboard.now))
            rows.append(
                [
                    _label(row.gpu),
                    model,
                    f"{person(claim.user_id, names)}{lost}",
                    f"{when(claim.ends_at, timezone)} ({left} left)",
                    printable(claim.purpose),
                ]
            )
    return "\n".join([title, *table(["GPU", "MODEL", "HELD BY", "UNTIL", "PURPOSE"], rows)])


def render_fleet_status(fleet: Fleet, host: str | None, timezone: ZoneInfo, names: Mapping[str, str]) -> str:
    """`gpubot status [HOST]`: one host in full (the one named, or the only one), else a line per host and what is held.

    Raises:
        UnknownHost: `host` is not one of the fleet's.
    """
    if host is not None or not fleet.several:
        return render_status(fleet.host(host) if host is not None else fleet.hosts[0], timezone, names)
    offline = sum(1 for dashboard in fleet.hosts if not dashboard.online)
    title = f"GPUs in the fleet: {fleet.free_count} of {fleet.gpu_count} free on {len(fleet.hosts)} hosts"
    title += f" ({offline} offline)" if offline else ""
    hosts = [
        [
            printable(dashboard.host),
            str(len(dashboard.rows)),
            str(dashboard.free_count),
            "online" if dashboard.online else _offline(dashboard, timezone),
        ]
        for dashboard in fleet.hosts
    ]
    held = [
        [
            printable(f"{dashboard.host}:{row.gpu.label}"),
            person(row.claim.user_id, names),
            f"{when(row.claim.ends_at, timezone)} ({format_duration(row.claim.time_left(fleet.now))} left)",
            printable(row.claim.purpose),
        ]
        for dashboard in fleet.hosts
        for row in dashboard.rows
        if row.claim is not None
    ]
    lines = [title, *table(["HOST", "GPUS", "FREE", "STATE"], hosts), ""]
    lines.extend(table(["GPU", "HELD BY", "UNTIL", "PURPOSE"], held) if held else ["Nothing is held."])
    lines.append("`gpubot status HOST` shows one host in full.")
    return "\n".join(lines)


def render_fleet_realtime(
    fleet: Fleet, host: str | None, thresholds: LoadThresholds, timezone: ZoneInfo, names: Mapping[str, str]
) -> str:
    """`gpubot realtime [HOST]`: each host's live figures (the one named, or every host's, offline ones in a line).

    Raises:
        UnknownHost: `host` is not one of the fleet's.
    """
    shown = [fleet.host(host)] if host is not None else list(fleet.hosts)
    parts = []
    for dashboard in shown:
        if not dashboard.online or dashboard.sample is None:
            state = _offline(dashboard, timezone) if not dashboard.online else "no telemetry yet"
            parts.append(f"{printable(dashboard.host)}: {state}")
            continue
        parts.append(render_realtime(dashboard, dashboard.sample, thresholds, names))
    return "\n\n".join(parts)


def _offline(dashboard: Dashboard, timezone: ZoneInfo) -> str:
    seen = dashboard.last_seen_at
    return "offline, never reported" if seen is None else f"offline, last report {when(seen, timezone)}"


def render_realtime(
    dashboard: Dashboard, sample: HostSample, thresholds: LoadThresholds, names: Mapping[str, str]
) -> str:
    """Live load, temperature, utilization, memory, power and processes per GPU (`gpubot realtime`)."""
    driver = f"driver {printable(sample.driver_version)}" if sample.driver_version else "driver n/a"
    lines = [f"Live GPU load on {printable(dashboard.host)} ({driver})"]
    samples = {gpu.uuid: gpu for gpu in sample.gpus}
    rows: list[list[str]] = []
    processes: dict[int, list[str]] = {}
    for row in dashboard.rows:
        gpu = samples.get(row.gpu.uuid)
        holder = (
            person(row.claim.user_id, names)
            if row.claim
            else figures.covered_state(row, lambda user_id: person(user_id, names)) or _free_word(row.use)
        )
        if gpu is None:
            rows.append([f"❔ {_label(row.gpu)}", "no telemetry", "n/a", "n/a", "n/a", "n/a", holder])
            continue
        level = load_level(gpu, thresholds)
        rows.append(
            [
                f"{LOAD_BADGES[level]} {_label(row.gpu)}",
                level.value,
                figures.temperature(gpu),
                figures.percent(gpu.utilization_gpu_pct),
                figures.memory(gpu),
                figures.power(gpu),
                holder,
            ]
        )
        processes[len(rows) - 1] = _process_lines(gpu)
    rendered = table(["GPU", "LOAD", "TEMP", "UTIL", "MEMORY", "POWER", "HELD BY"], rows)
    lines.append(rendered[0])
    for position, line in enumerate(rendered[1:]):
        lines.append(line)
        lines.extend("      " + process for process in processes.get(position, []))
    if not dashboard.rows:
        lines.append("No GPUs found on this host.")
    return "\n".join(lines)


def render_claims(
    claims: Sequence[Claim], now: datetime, timezone: ZoneInfo, names: Mapping[str, str], several: bool = False
) -> str:
    """Active claims, one per line (`gpubot claims`); with `several` hosts, each GPU named `host:label`."""
    if not claims:
        return "No active claims."
    rows = [
        [
            printable(address(claim.label, claim.host, several)),
            person(claim.user_id, names),
            when(claim.started_at, timezone),
            when(claim.ends_at, timezone),
            format_duration(claim.time_left(now)),
            printable(claim.purpose),
        ]
        for claim in claims
    ]
    return "\n".join(table(["GPU", "HELD BY", "SINCE", "UNTIL", "LEFT", "PURPOSE"], rows))


def claims_json(claims: Sequence[Claim], now: datetime, names: Mapping[str, str]) -> str:
    """Active claims as a JSON array, times in ISO 8601 UTC (`gpubot claims --json`).

    A claim's `user_name` is null while the holder's name is unknown.
    """
    return json.dumps(
        [
            {
                "id": claim.id,
                "host": claim.host,
                "gpu": claim.label,
                "gpu_index": claim.gpu_index,
                "gpu_uuid": claim.gpu_uuid,
                "user_id": claim.user_id,
                "user_name": names.get(claim.user_id),
                "purpose": claim.purpose,
                "started_at": claim.started_at.isoformat(),
                "ends_at": claim.ends_at.isoformat(),
                "seconds_left": int(claim.time_left(now).total_seconds()),
                "warned": claim.warned_at is not None,
            }
            for claim in claims
        ],
        indent=2,
        ensure_ascii=False,
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart, sized by display width (emoji and CJK count as two)."""
    all_rows = [list(headers), *(list(row) for row in rows)]
    widths = [max(display_width(row[column]) for row in all_rows) for column in range(len(headers))]
    return [
        "  ".join(cell + " " * (widths[column] - display_width(cell)) for column, cell in enumerate(row)).rstrip()
        for row in all_rows
    ]


def display_width(text: str) -> int:
    """The columns `text` takes in a terminal: wide East Asian characters two, combining marks none."""
    return sum(
        0
        if unicodedata.combining(char) or char == "\ufe0f"
        else 2
        if unicodedata.east_asian_width(char) in ("W", "F")
        else 1
        for char in text
    )


def _label(gpu: Gpu) -> str:
    # A slice is indented under its card.
    return f"  {gpu.label}" if gpu.is_slice else gpu.label


def _free_word(use: GpuUse) -> str:
    if use.in_use:
        return "free, but in use"
    if use.unclaimable or use.reason is not None:
        return figures.free_state(use, printable)
    return ""


def _process_lines(gpu: GpuSample) -> list[str]:
    unknown = figures.processes_unknown(gpu)
    if unknown is not None:
        return [printable(unknown)]
    return figures.process_lines(
        gpu.processes,
        lambda process: (
            f"pid {process.pid} {printable(process.name or 'n/a')} "
            f"({printable(process.user or 'n/a')}), {figures.mib(process.used_memory_mib)}"
        ),
    )
