"""`bench/fleet_load.py --quick` runs end to end on PostgreSQL, so the fleet benchmark cannot rot. Nothing is timed:
it checks that every reply was the right one and that each part of the report is there."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.postgres import require_postgres, server_url

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.postgres


def test_the_fleet_benchmark_runs_and_every_reply_is_right(monkeypatch: pytest.MonkeyPatch):
    require_postgres()
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import fleet_load

    results = asyncio.run(fleet_load.run(server_url(), quick=True))

    assert results["fleet"] == {"hosts": 32, "gpus_per_host": 8, "serve_daemons": 3}
    for in_flight in ("1", "10", "50"):
        row = results["latency"][in_flight]
        assert set(row) == {"floor-tuned status", "floor-durable-pg", "status", "realtime", "claim", "release"}
        for kind, summary in row.items():
            assert summary["count"] > 0 and summary["failed"] == 0 and summary["lost"] == 0, (in_flight, kind)
    assert 0 < results["ingest"]["core_share"] < 1
    assert results["failover"]["first_20_after_kill"]["count"] == 20
