"""The benchmarks still run: `bench/run_all.py --quick` writes well-formed results. Nothing here is timed.

The quick run starts the real `gpubot serve` (twice, on 8 and 64 fake GPUs) and the three Bolt floors against
the stand-in, sends a few envelopes of every kind (slash commands, Home opens, a button, the claim form),
makes 3 short claims and waits for their DMs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APPS = {"floor-default", "floor-tuned", "floor-durable", "gpubot-8gpu", "gpubot-64gpu"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    benchmarks_md = (REPO / "BENCHMARKS.md").read_text()
    completed = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run_all.py"), "--quick", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert (REPO / "BENCHMARKS.md").read_text() == benchmarks_md, "a quick run must not rewrite BENCHMARKS.md"
    return json.loads(out.read_text()), completed.stdout


def test_every_app_answered_every_envelope_with_the_expected_reply(quick_run):
    results, _ = quick_run
    rows = results["load"]["latency"]
    assert {row["app"] for row in rows} == APPS
    assert {row["kind"] for row in rows if row["app"] == "gpubot-64gpu"} == {
        "status",
        "help",
        "realtime",
        "claim",
        "release",
        "home",
        "button",
        "form",
    }
    for row in rows:
        assert row["reply"]["count"] > 0
        assert (row["errors"], row["lost"]) == (0, 0), row
        assert row["reply"]["p50_ms"] <= row["reply"]["p99_ms"] <= row["reply"]["max_ms"]
    for run in results["load"]["throughput"]:
        assert run["commands"] > 0 and (run["errors"], run["lost"]) == (0, 0), run
    assert results["load"]["memory"]["rss_after_mib"] > 0
    assert set(results["load"]["exit_codes"].values()) == {0}


def test_startup_views_telemetry_and_expiry_are_all_reported(quick_run):
    results, _ = quick_run
    assert results["startup"]["gpubot"]["restart"]["ready_ms"]["count"] >= 1
    views = results["views"]["views"]
    assert {(row["view"], row["gpus"]) for row in views} >= {("dashboard", 256), ("home", 256), ("fleet home", 256)}
    assert all(row["within_limit"] for row in views)
    assert results["telemetry"]["fake"] and (
        "skipped" in results["telemetry"]["nvml"] or results["telemetry"]["nvml"]["gpus"]
    )
    expiry = results["expiry"]
    assert expiry["missing_dms"] == {"warning": 0, "expiry": 0}
    assert expiry["warning_dm_late"]["count"] == expiry["expiry_dm_late"]["count"] == expiry["claims"]


def test_the_report_judges_every_target(quick_run):
    results, stdout = quick_run
    assert "### Targets" in stdout and "QUICK" in stdout
    assert "durable floor's" in stdout and "**Writes against the durable floor**" in stdout
    assert results["machine"]["cores"] and results["machine"]["python"]
