"""The weekly digest's chart: utilization by hour of the week, and each person's hours held beside busy.

    python -m gpubot.charts.digest_chart < figures.json > chart.png

Reads the figures as JSON on stdin (`chart_input`) and writes one PNG on stdout. The daemon runs it as a child
(`render_digest_chart`) so that matplotlib, tens of megabytes once imported, is never loaded into the daemon.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from gpubot.core.errors import GpubotError
from gpubot.core.usage_report import WEEKDAYS, UsageReport

# How long the child may take; drawing takes about a second, importing matplotlib the rest.
RENDER_TIMEOUT_S = 60.0
PEOPLE_SHOWN = 12
WIDTH_IN, HEIGHT_IN, DPI = 10.0, 7.0, 100


class ChartError(GpubotError):
    """The chart could not be drawn (the digest then goes out with its figures in text only)."""


def chart_input(report: UsageReport, names: Mapping[str, str]) -> dict[str, Any]:
    """What the child needs, as JSON: the title, the week grid, and the people with the most hours held."""
    people = [
        [names.get(person.user_id, person.user_id), person.totals.held_s / 3600, person.totals.busy_s / 3600]
        for person in report.people[:PEOPLE_SHOWN]
    ]
    return {"title": report.title, "grid": [list(row) for row in report.week_grid], "people": people}


def render_digest_chart(figures: Mapping[str, Any], timeout_s: float = RENDER_TIMEOUT_S) -> bytes:
    """Draw the chart in a child process and return the PNG.

    Raises:
        ChartError: the child failed, timed out, or did not write a PNG.
    """
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gpubot.charts.digest_chart"],
            input=json.dumps(figures).encode(),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ChartError(f"drawing the digest's chart took longer than {timeout_s:.0f} s") from None
    if done.returncode != 0 or not done.stdout.startswith(b"\x89PNG\r\n\x1a\n"):
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise ChartError(f"drawing the digest's chart failed: {said[-1] if said else f'exit {done.returncode}'}")
    return done.stdout


def draw(figures: Mapping[str, Any]) -> bytes:
    """The PNG for `figures` (`chart_input`'s shape). Imports matplotlib: call it only in the child."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = [[float("nan") if value is None else value for value in row] for row in figures["grid"]]
    people = figures["people"]
    figure, (heat, bars) = plt.subplots(
        2, 1, figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, gridspec_kw={"height_ratios": [1, 1.2]}
    )
    image = heat.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=100)
    heat.set_yticks(range(7), WEEKDAYS)
    heat.set_xticks(range(0, 24, 3), [f"{hour:02d}:00" for hour in range(0, 24, 3)])
    heat.set_title("Average GPU utilization by hour of the week (%)")
    figure.colorbar(image, ax=heat, fraction=0.04)
    if people:
        labels = [str(person[0]) for person in people][::-1]
        bars.barh(labels, [person[1] for person in people][::-1], color="#c9d6df", label="held")
        bars.barh(labels, [person[2] for person in people][::-1], color="#1d3b2a", label="busy")
        bars.set_xlabel("GPU-hours")
        bars.legend(loc="lower right")
    else:
        bars.text(0.5, 0.5, "No claims this week", ha="center", va="center")
        bars.set_axis_off()
    bars.set_title("GPU-hours held and busy, by person")
    figure.suptitle(f"GPU usage: {figures['title']}")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def main() -> int:
    """Read the figures on stdin, write the PNG on stdout."""
    sys.stdout.buffer.write(draw(json.load(sys.stdin)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
