"""What a `/gpu status` read costs on PostgreSQL, with and without the LISTEN/NOTIFY snapshot.

On a fleet-sized database of its own (32 hosts × 8 GPUs, a quarter of them claimed), on the local server
(or ``--server``), it times the status read (`ClaimService.dashboard`) and counts the SQL statements each
read sends, in three cases:

- ``fresh``: no listener (the host CLI; every PostgreSQL read before LISTEN/NOTIFY): a load per read;
- ``listening``: a daemon's listener and nothing committed: no statement at all;
- ``listening, a change every 10 reads``: another process commits a claim change every tenth read.

    python bench/pg_reads.py [--reads 2000] [--server postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

It prints one JSON object: per case, the latency summary and the statements per read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from percentiles import summarize_s
from pg_scratch import DEFAULT_SERVER, scratch_database
from sqlalchemy import Engine, event

from gpubot.core.models import ClaimStatus, EventKind, Gpu, NewClaim
from gpubot.core.policy import ClaimPolicy
from gpubot.core.service import ClaimService
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import upgrade_to_head
from gpubot.storage.pg_notify import PgNotifications

HOSTS = [f"node{number:02d}" for number in range(32)]
NOW = datetime.now(timezone.utc)
CHANGE_EVERY = 10


class _Clock:
    def now(self) -> datetime:
        return NOW


def _fill(store: SqlClaimStore) -> list[Gpu]:
    gpus = [Gpu(host, f"GPU-{host}-{index}", index, "NVIDIA H100") for host in HOSTS for index in range(8)]
    for host in HOSTS:
        store.sync_gpus(host, [gpu for gpu in gpus if gpu.host == host], NOW)
    store.create_claims([NewClaim(gpu, "U_BENCH", "bench", NOW, NOW + timedelta(days=1)) for gpu in gpus[::4]])
    return gpus


def _time_reads(engine: Engine, read: Callable[[], Any], reads: int, between: Callable[[int], None]) -> dict[str, Any]:
    sent: list[str] = []

    def count(*args: Any) -> None:
        sent.append(args[2])

    read()  # the first load is a start-up cost, not a read's
    samples: list[float] = []
    event.listen(engine, "before_cursor_execute", count)
    try:
        for number in range(reads):
            between(number)
            started = time.perf_counter()
            read()
            samples.append(time.perf_counter() - started)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    summary = summarize_s(samples)
    assert summary is not None
    return {**summary.as_dict(), "statements_per_read": round(len(sent) / reads, 3)}


def run(server: str, reads: int) -> dict[str, Any]:
    """The three cases' results, on a database created for the run and dropped after it."""
    with scratch_database(server) as url:
        engine, other = make_engine(url), make_engine(url)
        notifications = PgNotifications(engine)
        try:
            upgrade_to_head(engine)
            gpus = _fill(SqlClaimStore(other))
            results: dict[str, Any] = {}
            fresh = ClaimService(SqlClaimStore(engine), _Clock(), ClaimPolicy(), host=HOSTS[0])
            results["fresh"] = _time_reads(engine, lambda: fresh.dashboard(None), reads, lambda _: None)
            notifications.start()
            if not notifications.wait_listening(10):
                raise RuntimeError("the listener did not connect")
            store = SqlClaimStore(engine, notifications=notifications)
            listening = ClaimService(store, _Clock(), ClaimPolicy(), host=HOSTS[0])
            results["listening"] = _time_reads(engine, lambda: listening.dashboard(None), reads, lambda _: None)
            writer = SqlClaimStore(other)

            def change(number: int) -> None:
                if number % CHANGE_EVERY:
                    return
                seen = notifications.version() or 0
                [claim] = writer.create_claims([NewClaim(gpus[1], "U_OTHER", "bench", NOW, NOW + timedelta(hours=1))])
                writer.end_claim(claim.id, ClaimStatus.RELEASED, EventKind.RELEASED, "U_OTHER", NOW)
                # Both notifications in before the read, so that it is the one that reloads (untimed).
                deadline = time.monotonic() + 5
                while (notifications.version() or 0) < seen + 2 and time.monotonic() < deadline:
                    time.sleep(0.0001)

            results[f"listening, a change every {CHANGE_EVERY} reads"] = _time_reads(
                engine, lambda: listening.dashboard(None), reads, change
            )
            return results
        finally:
            notifications.close()
            engine.dispose()
            other.dispose()


def main() -> int:
    """Run it and print the results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000, help="status reads per case")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="a SQLAlchemy URL of any database on the server")
    arguments = parser.parse_args()
    print(json.dumps(run(arguments.server, arguments.reads), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
