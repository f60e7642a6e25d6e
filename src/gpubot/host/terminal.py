"""Plain-text renderings for a terminal: the host commands' tables, and Block Kit as a person would read it.

Pure functions from state to strings; no I/O. Text people typed (a claim's purpose) can hold terminal
control sequences, so it passes through `printable()` before it reaches a line.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gpubot.core import figures
from gpubot.core.durations import format_duration
from gpubot.core.errors import ConfigError, GpubotError, NoDatabase, NotHolder
from gpubot.core.figures import LOAD_BADGES, when
from gpubot.core.load import LoadThresholds, load_level
from gpubot.core.models import Claim, GpuSample, HostSample
from gpubot.core.service import Dashboard, GpuRow

_RULE = "─"
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
        return f"GPU {error.gpu_index} is claimed by {person(error.holder_id, names)}, not by you."
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
        )
        if count
    ]
    title = f"GPUs on {printable(dashboard.host)}: {dashboard.free_count} of {total} free"
    title += f" ({', '.join(caveats)})" if caveats else ""
    if not dashboard.rows:
        return f"GPUs on {printable(dashboard.host)}: none found"
    rows = []
    for row in dashboard.rows:
        lost = " (not responding)" if row.use.not_responding else ""
        model = printable(row.gpu.name or "unknown model")
        claim = row.claim
        if claim is None:
            rows.append([str(row.gpu.index), model, _free_state(row), "", ""])
        else:
            left = format_duration(claim.time_left(dashboard.now))
            rows.append(
                [
                    str(row.gpu.index),
                    model,
                    f"{person(claim.user_id, names)}{lost}",
                    f"{when(claim.ends_at, timezone)} ({left} left)",
                    printable(claim.purpose),
                ]
            )
    return "\n".join([title, *table(["GPU", "MODEL", "HELD BY", "UNTIL", "PURPOSE"], rows)])


def _free_state(row: GpuRow) -> str:
    if row.use.not_responding:
        return "not responding"
    if row.use.in_use:
        return f"free, but in use by {printable(row.use.description())}"
    return "free"


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
        holder = person(row.claim.user_id, names) if row.claim else "free, but in use" if row.use.in_use else ""
        if gpu is None:
            rows.append([f"❔ {row.gpu.index}", "no telemetry", "n/a", "n/a", "n/a", "n/a", holder])
            continue
        level = load_level(gpu, thresholds)
        rows.append(
            [
                f"{LOAD_BADGES[level]} {row.gpu.index}",
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


def render_claims(claims: Sequence[Claim], now: datetime, timezone: ZoneInfo, names: Mapping[str, str]) -> str:
    """Active claims, one per line (`gpubot claims`)."""
    if not claims:
        return "No active claims."
    rows = [
        [
            str(claim.gpu_index),
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
    """Active claims as a JSON array, times in ISO 8601 UTC (`gpubot claims --json`); `user_name` is null
    while the holder's name is unknown."""
    return json.dumps(
        [
            {
                "id": claim.id,
                "host": claim.host,
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
    widths = [max(_width(row[column]) for row in all_rows) for column in range(len(headers))]
    return [
        "  ".join(cell + " " * (widths[column] - _width(cell)) for column, cell in enumerate(row)).rstrip()
        for row in all_rows
    ]


def _width(text: str) -> int:
    return sum(
        0
        if unicodedata.combining(char) or char == "\ufe0f"
        else 2
        if unicodedata.east_asian_width(char) in ("W", "F")
        else 1
        for char in text
    )


def _process_lines(gpu: GpuSample) -> list[str]:
    return figures.process_lines(
        gpu.processes,
        lambda process: (
            f"pid {process.pid} {printable(process.name or 'n/a')} "
            f"({printable(process.user or 'n/a')}), {figures.mib(process.used_memory_mib)}"
        ),
    )


# --- Block Kit, as a person reads it -----------------------------------------------------------------

_DATE_TOKEN = re.compile(r"<!date\^[^|>]*\|([^>]*)>")
_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL = re.compile(r"<#([CGD][A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")
_CODE_BLOCK = re.compile(r"```(.*?)```", re.DOTALL)
_CODE = re.compile(r"`([^`\n]+)`")
_EMPHASIS = [re.compile(rf"(?<![\w{mark}])\{mark}(?=\S)(.+?)(?<=\S)\{mark}(?![\w{mark}])") for mark in "*_~"]


def mrkdwn_to_text(text: str, names: Mapping[str, str] | None = None) -> str:
    """Slack mrkdwn as plain text: markup removed, date tokens as their fallback, mentions as @name.

    Args:
        text: mrkdwn, as in a section's text.
        names: Display names by user ID; a user without one shows as @U….

    Returns:
        The text a reader sees, without formatting.
    """
    names = names or {}
    protected: list[str] = []

    def protect(value: str) -> str:
        protected.append(value)
        return f"\0{len(protected) - 1}\0"

    # Code is shown as typed, so nothing inside it is markup.
    text = _CODE_BLOCK.sub(lambda m: protect("\n    " + m[1].strip("\n").replace("\n", "\n    ") + "\n"), text)
    text = _CODE.sub(lambda m: protect(m[1]), text)
    text = _DATE_TOKEN.sub(lambda m: protect(m[1]), text)
    text = _USER.sub(lambda m: protect("@" + (names.get(m[1]) or m[2] or m[1])), text)
    text = _CHANNEL.sub(lambda m: protect("#" + (m[2] or m[1])), text)
    text = _SPECIAL.sub(lambda m: protect("@" + m[1]), text)
    text = _LINK.sub(lambda m: protect(m[2] or m[1]), text)
    for emphasis in _EMPHASIS:
        text = emphasis.sub(lambda m: m[1], text)
    text = re.sub("\0(\\d+)\0", lambda m: protected[int(m[1])], text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render_blocks(blocks: Sequence[Mapping[str, Any]], names: Mapping[str, str] | None = None) -> str:
    """A message's or view's blocks as the lines a person reads; buttons show as [Button]."""
    lines: list[str] = []
    for block in blocks:
        lines.extend(_block_lines(block, names or {}))
    return "\n".join(line.rstrip() for line in lines)


def _text(obj: Any, names: Mapping[str, str]) -> str:
    if not isinstance(obj, Mapping):
        return ""
    text = str(obj.get("text", ""))
    return mrkdwn_to_text(text, names) if obj.get("type") == "mrkdwn" else text


def _element(element: Mapping[str, Any], names: Mapping[str, str]) -> str:
    kind = element.get("type")
    if kind == "button":
        return f"[{_text(element.get('text'), names)}]"
    if kind in ("static_select", "multi_static_select", "users_select", "conversations_select"):
        initial = element.get("initial_option")
        label = _text(initial.get("text"), names) if isinstance(initial, Mapping) else ""
        return f"[{label or _text(element.get('placeholder'), names) or 'choose'} ▾]"
    if kind == "overflow":
        return "[⋯]"
    if kind in ("mrkdwn", "plain_text"):
        return _text(element, names)
    if kind == "image":
        return f"[image: {element.get('alt_text', '')}]"
    return f"[{kind}]"


def _block_lines(block: Mapping[str, Any], names: Mapping[str, str]) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        title = _text(block.get("text"), names)
        return [title, _RULE * max(_width(title), 3)]
    if kind == "section":
        lines = _text(block.get("text"), names).splitlines() if block.get("text") else []
        lines += [_text(field, names) for field in block.get("fields") or []]
        accessory = block.get("accessory")
        if isinstance(accessory, Mapping):
            if lines:
                lines[-1] = f"{lines[-1]}  {_element(accessory, names)}"
            else:
                lines = [_element(accessory, names)]
        return lines
    if kind == "context":
        return ["  " + " · ".join(_element(element, names) for element in block.get("elements") or [])]
    if kind == "actions":
        return [" ".join(_element(element, names) for element in block.get("elements") or [])]
    if kind == "divider":
        return [_RULE * 40]
    if kind == "input":
        return [f"{_text(block.get('label'), names)}: {_element(block.get('element') or {}, names)}"]
    if kind == "image":
        return [f"[image: {block.get('alt_text', '')}]"]
    return [f"[{kind} block]"]
