"""`bench/pg_reads.py` runs, and shows what it is there to show: a status read on PostgreSQL sends no SQL while
nothing changed, one load per change otherwise. Nothing here is timed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.postgres import require_postgres, server_url

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.postgres


def test_a_status_read_on_postgresql_costs_no_statement_while_nothing_changed(monkeypatch: pytest.MonkeyPatch):
    require_postgres()
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import pg_reads

    results = pg_reads.run(server_url(), reads=30)
    assert results["fresh"]["statements_per_read"] > 0
    assert results["listening"]["statements_per_read"] == 0
    # A change every tenth read, each one load of two statements (GPUs, claims) by the read after it.
    assert results["listening, a change every 10 reads"]["statements_per_read"] == pytest.approx(3 * 2 / 30)
    assert all(result["count"] == 30 for result in results.values())
