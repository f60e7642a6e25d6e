"""`bench/usage_cost.py --quick` runs on SQLite and PostgreSQL, so the usage benchmark cannot rot. Nothing is timed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.postgres import require_postgres, server_url

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.postgres


def test_the_usage_benchmark_runs_and_reports_each_part(monkeypatch: pytest.MonkeyPatch):
    require_postgres()
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import usage_cost

    results = usage_cost.run(server_url(), quick=True)

    for database in ("SQLite", "PostgreSQL"):
        query = results[f"usage query, {database}"]
        assert query["claims"] == 30 * 10 * 2 and query["team 30d"]["count"] == 5
        counting = results[f"counting, {database}"]
        assert counting["report and count"]["cpu_ms_per_report"] > 0
    assert results["digest memory"]["after posting a digest"]["rss_mib"] > 0
