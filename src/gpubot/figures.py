"""GPU figures as people read them, "n/a" for what a GPU cannot report: shared by Slack and the terminal."""

from __future__ import annotations

from gpubot.core.models import GpuSample


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} %"


def mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,} MiB"


def temperature(sample: GpuSample) -> str:
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
