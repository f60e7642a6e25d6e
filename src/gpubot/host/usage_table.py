"""`gpubot usage`: a usage report as rows, by person, purpose, host or GPU, for a terminal, a spreadsheet or a script.

Pure: from the report's figures to text. Hours are GPU-hours with two decimals; a share is a fraction of 1.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from typing import Literal

from gpubot.core.usage_report import GpuFigures, UsageView, top_purposes
from gpubot.host.terminal import person, printable, table

UsageBy = Literal["user", "purpose", "host", "gpu"]
USAGE_BY: tuple[UsageBy, ...] = ("user", "purpose", "host", "gpu")
UsageFormat = Literal["table", "csv", "json"]

Cell = str | int | float | None


def usage_rows(view: UsageView, by: UsageBy, names: Mapping[str, str]) -> tuple[list[str], list[list[Cell]]]:
    """The report's rows grouped `by` one of `USAGE_BY`, with their column names."""
    figures = view.figures
    if by == "user":
        return ["user_id", "user", "claims", "held_h", "observed_h", "busy_h", "idle_held_h", "busy_share"], [
            [
                person_usage.user_id,
                names.get(person_usage.user_id),
                person_usage.totals.claims,
                _hours(person_usage.totals.held_s),
                _hours(person_usage.totals.observed_s),
                _hours(person_usage.totals.busy_s),
                _hours(person_usage.totals.idle_s),
                _share(person_usage.totals.busy_share),
            ]
            for person_usage in view.report.people
        ]
    if by == "purpose":
        purposes = top_purposes(figures.purposes, count=None)
        return ["purpose", "held_h"], [[purpose.purpose, _hours(purpose.held_s)] for purpose in purposes]
    if by == "gpu":
        return ["host", "gpu_uuid", "model", "held_h", "observed_h", "busy_h", "busy_share", "utilization_avg"], [
            [
                gpu.host,
                gpu.uuid,
                gpu.name,
                _hours(gpu.held_s),
                _hours(gpu.observed_s),
                _hours(gpu.busy_s),
                _share(gpu.busy_s / gpu.observed_s if gpu.observed_s else None),
                None if gpu.utilization_avg is None else round(gpu.utilization_avg, 1),
            ]
            for gpu in figures.gpus
        ]
    hosts: dict[str, list[GpuFigures]] = {}
    for gpu in figures.gpus:
        hosts.setdefault(gpu.host, []).append(gpu)
    rows: list[list[Cell]] = []
    for host, gpus in sorted(hosts.items()):
        observed = sum(gpu.observed_s for gpu in gpus)
        busy = sum(gpu.busy_s for gpu in gpus)
        held = sum(gpu.held_s for gpu in gpus)
        rows.append(
            [
                host,
                len(gpus),
                _hours(held),
                _hours(observed),
                _hours(busy),
                _share(busy / observed if observed else None),
            ]
        )
    return ["host", "gpus", "held_h", "observed_h", "busy_h", "busy_share"], rows


def render_usage(view: UsageView, by: UsageBy, output: UsageFormat, names: Mapping[str, str]) -> str:
    """The rows as an aligned table (with the report's title and totals), CSV with a header, or a JSON array."""
    headers, rows = usage_rows(view, by, names)
    if output == "json":
        return json.dumps([dict(zip(headers, row, strict=True)) for row in rows], indent=2, ensure_ascii=False)
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(["" if cell is None else cell for cell in row] for row in rows)
        return buffer.getvalue().rstrip("\n")
    report = view.report
    totals = report.totals
    share = _share(totals.busy_share)
    lines = [
        f"GPU usage: {printable(report.title)}, last {report.days} days",
        f"{totals.claims} claims, {_hours(totals.held_s)} GPU-h held, {_hours(totals.busy_s)} busy"
        + (f" ({share:.0%} of what was observed)" if share is not None else "")
        + f", {_hours(totals.idle_s)} idle while held",
    ]
    if report.busiest:
        lines.append("busiest hours: " + ", ".join(f"{h.label} ({h.utilization_pct:.0f}%)" for h in report.busiest))
    lines.append("")
    shown = [[_cell(cell, headers[column], names) for column, cell in enumerate(row)] for row in rows]
    lines += table([header.upper() for header in headers], shown) if rows else ["(nothing in this period)"]
    return "\n".join(lines)


def _cell(cell: Cell, header: str, names: Mapping[str, str]) -> str:
    if header == "user_id" and isinstance(cell, str):
        return person(cell, names)
    return "-" if cell is None else printable(str(cell))


def _hours(seconds: float) -> float:
    return round(seconds / 3600, 2)


def _share(share: float | None) -> float | None:
    return None if share is None else round(share, 3)
