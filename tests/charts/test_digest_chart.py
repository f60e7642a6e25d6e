"""The digest's chart: a real PNG of a sensible size, drawn in a child so the parent never imports matplotlib."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from gpubot.charts.digest_chart import ChartError, chart_input, render_digest_chart
from gpubot.core.usage_report import HourUtilization, PersonUsage, UsageFigures, UsageTotals, usage_report

UNTIL = datetime(2026, 11, 23, 8, tzinfo=timezone.utc)


def report():
    figures = UsageFigures(
        people=(
            PersonUsage("U0ALICE", UsageTotals(20 * 3600, 20 * 3600, 15 * 3600, 3)),
            PersonUsage("U0BOB", UsageTotals(5 * 3600, 5 * 3600, 1 * 3600, 1)),
        ),
        hours=tuple(
            HourUtilization(UNTIL - timedelta(hours=hour), float(hour % 100), 3600.0) for hour in range(1, 100)
        ),
    )
    return usage_report("the team", UNTIL - timedelta(days=7), UNTIL, figures, ZoneInfo("Europe/Berlin"))


def test_the_chart_is_a_valid_png_of_a_sensible_size():
    png = render_digest_chart(chart_input(report(), {"U0ALICE": "alice"}))

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])  # IHDR
    assert (width, height) == (1000, 700)
    assert 10_000 < len(png) < 1_000_000
    with Image.open(io.BytesIO(png)) as image:
        image.verify()


def test_the_parent_never_imports_matplotlib():
    code = (
        "import sys\n"
        "from gpubot.charts.digest_chart import render_digest_chart\n"
        "png = render_digest_chart({'title': 't', 'grid': [[None] * 24] * 7, 'people': []})\n"
        "assert png.startswith(b'\\x89PNG')\n"
        "print('matplotlib' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "False"


def test_figures_the_child_cannot_read_are_a_clear_error():
    with pytest.raises(ChartError, match="drawing the digest's chart failed"):
        render_digest_chart({"title": "t"})
