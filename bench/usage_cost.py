"""What usage analytics cost: `/gpu usage` over a year of history, counting samples, and a digest's memory.

    python bench/usage_cost.py --json-out usage.json [--quick] [--server postgresql+psycopg://…]

* `/gpu usage team 90d` (and `me 90d`, a GPU model's 90 days): `UsageReports.report` on a SQLite file and on a
  PostgreSQL database holding a year of history for 64 GPUs (8 hosts of 8) and 50 people: hourly rows for every
  GPU, and 2 claims a day per person with their tallies (a quick run: 30 days, 10 people);
* counting samples: a host's report of 8 GPUs with and without usage counting (`FleetTransactions.report`),
  CPU seconds per report, and what 8 such hosts reporting every 2 s cost as a share of one core;
* a digest's memory: two `gpubot serve` on the fake backend, one posting a due digest at start (its chart drawn
  in a child), one without; their RSS after start, side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fleet import write_fake_host
from loopback import LoopbackSlack
from percentiles import summarize_s
from pg_scratch import DEFAULT_SERVER, scratch_database
from sqlalchemy import Engine, insert
from targets import gpubot_spec, start_target

from gpubot.core.commands import UsageCommand, UsageScope
from gpubot.core.models import GpuSample, HostRole, HostSample, ProcessSample
from gpubot.core.usage import UsageRule
from gpubot.core.usage_report import UsageReports
from gpubot.storage import tables
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import upgrade_to_head

NOW = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)
HOSTS, GPUS_PER_HOST = 8, 8
INTERVAL = timedelta(seconds=2)
_BATCH = 20_000
_SUMS = ("observed_s", "busy_s", "utilization_s", "utilization_known_s")


class _Clock:
    def now(self) -> datetime:
        return NOW


def _fill(engine: Engine, days: int, people: int) -> dict[str, int]:
    """A history of `days` days: every GPU's hours, and two claims a day per person, each with its tally."""
    chooser = random.Random(7)
    gpus = [(f"node{h}", f"GPU-{h}-{g}") for h in range(HOSTS) for g in range(GPUS_PER_HOST)]
    start = NOW - timedelta(days=days)
    hour_rows = []
    for hour in range(days * 24):
        at = start + timedelta(hours=hour)
        for host, uuid in gpus:
            utilization = chooser.randint(0, 100)
            hour_rows.append(
                {
                    "host": host,
                    "gpu_uuid": uuid,
                    "hour": at,
                    "gpu_name": "NVIDIA H100 80GB HBM3" if host < "node4" else "NVIDIA A100-SXM4-80GB",
                    "observed_s": 3600.0,
                    "busy_s": 3600.0 * (utilization >= 10),
                    "utilization_s": 3600.0 * utilization,
                    "utilization_known_s": 3600.0,
                    "utilization_peak": utilization,
                    "memory_peak_mib": 40_000,
                }
            )
    # The same hours summed per host and model, as counting writes them.
    summed: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in hour_rows:
        key = (row["host"], row["gpu_name"], row["hour"])
        total = summed.setdefault(
            key, {"host": key[0], "gpu_name": key[1], "hour": key[2], **dict.fromkeys(_SUMS, 0.0)}
        )
        for column in _SUMS:
            total[column] += row[column]
    model_rows = [{**total, "utilization_peak": 100, "memory_peak_mib": 40_000} for total in summed.values()]
    claim_rows, usage_rows = [], []
    claim_id = 0
    for day in range(days):
        for person in range(people):
            for _ in range(2):
                claim_id += 1
                host, uuid = chooser.choice(gpus)
                started = start + timedelta(days=day, hours=chooser.randint(0, 20))
                held = timedelta(hours=chooser.randint(1, 4))
                claim_rows.append(
                    {
                        "id": claim_id,
                        "host": host,
                        "gpu_uuid": uuid,
                        "gpu_index": int(uuid.rsplit("-", 1)[1]),
                        "user_id": f"U{person:05d}",
                        "purpose": chooser.choice(["train", "eval", "debug", "fine-tune llama", "render"]),
                        "started_at": started,
                        "ends_at": started + held,
                        "status": "released",
                        "ended_at": started + held,
                        "ended_by": f"U{person:05d}",
                    }
                )
                seconds = held.total_seconds()
                usage_rows.append(
                    {
                        "claim_id": claim_id,
                        "observed_s": seconds,
                        "busy_s": seconds * chooser.random(),
                        "utilization_s": seconds * 50,
                        "utilization_known_s": seconds,
                        "utilization_peak": 99,
                        "memory_peak_mib": 60_000,
                        "users": f"user{person}",
                    }
                )
    with engine.begin() as connection:
        filled = (
            (tables.gpu_usage_hours, hour_rows),
            (tables.model_usage_hours, model_rows),
            (tables.claims, claim_rows),
            (tables.claim_usage, usage_rows),
        )
        for table, rows in filled:
            for offset in range(0, len(rows), _BATCH):
                connection.execute(insert(table), rows[offset : offset + _BATCH])
    return {"gpu_hours": len(hour_rows), "claims": len(claim_rows)}


def _time(call: Callable[[], object], repeats: int) -> dict[str, Any]:
    call()  # the first run warms the caches (and the statements' compilation)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    summary = summarize_s(samples)
    assert summary is not None
    return summary.as_dict()


def _queries(engine: Engine, days: int, people: int, repeats: int) -> dict[str, Any]:
    upgrade_to_head(engine)
    filled = _fill(engine, days, people)
    store = SqlClaimStore(engine)
    reports = UsageReports(store, store, lambda: [], _Clock(), ZoneInfo("Europe/Berlin"))
    period = min(days, 90)
    team = UsageCommand(UsageScope("team"), period)
    mine = UsageCommand(UsageScope("person", "U00007"), period)
    view = reports.report(None, team)
    assert view.report.totals.claims > 0 and len(view.report.people) == people and view.report.busiest
    return {
        **filled,
        f"team {period}d": _time(lambda: reports.report(None, team), repeats),
        f"one person {period}d": _time(lambda: reports.report(None, mine), repeats),
    }


def _host_sample(tick: int) -> HostSample:
    return HostSample(
        "node0",
        "580.1",
        tuple(
            GpuSample(
                index,
                f"GPU-0-{index}",
                "NVIDIA H100 80GB HBM3",
                81559,
                20_000,
                (index * 37 + tick) % 100,
                processes=(ProcessSample(100 + index, "python", 20_000, "alice"),),
            )
            for index in range(GPUS_PER_HOST)
        ),
    )


def _counting(engine: Engine, reports: int) -> dict[str, Any]:
    """CPU per report of one 8-GPU host, with and without counting its usage."""
    upgrade_to_head(engine)
    store = SqlClaimStore(engine)
    store.register_host("node0", HostRole.AGENT, "me", "bench", NOW, timedelta(minutes=5))
    rule = UsageRule(INTERVAL, active_pct=10)
    figures: dict[str, Any] = {}
    for name, usage in (("report", None), ("report and count", rule)):
        at = NOW + timedelta(days=1 if usage else 0)
        started = time.process_time()
        for tick in range(reports):
            store.report("node0", "me", _host_sample(tick), at + tick * INTERVAL, usage)
        figures[name] = {"cpu_ms_per_report": round((time.process_time() - started) / reports * 1000, 3)}
    extra_s = (figures["report and count"]["cpu_ms_per_report"] - figures["report"]["cpu_ms_per_report"]) / 1000
    # 64 GPUs: 8 hosts of 8, each counting once per interval.
    figures["counting_core_share_64_gpus"] = round(HOSTS * extra_s / INTERVAL.total_seconds(), 5)
    return figures


@contextmanager
def _sqlite() -> Iterator[Engine]:
    with tempfile.TemporaryDirectory(prefix="gpubot-usage-") as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'gpubot.db'}")
        try:
            yield engine
        finally:
            engine.dispose()


@contextmanager
def _postgres(server: str) -> Iterator[Engine]:
    with scratch_database(server) as url:
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


async def _digest_memory() -> dict[str, Any]:
    """RSS of a daemon that posted a digest at start beside one that has no digest, both settled."""
    # Due today at midnight (UTC), so the daemon posts it as it starts.
    today = datetime.now(timezone.utc).strftime("%a").lower()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gpubot-digest-") as scratch:
        for name, settings in (
            ("without a digest", {}),
            ("after posting a digest", {"GPUBOT_DIGEST_CHANNEL": "C0DIGEST", "GPUBOT_DIGEST_AT": f"{today} 00:00"}),
        ):
            state = Path(scratch) / name.replace(" ", "-")
            state.mkdir()
            slack = await LoopbackSlack().start()
            posted = slack.calls.keep("chat.postMessage")
            target = await start_target(
                gpubot_spec(slack, state, write_fake_host(state / "gpus.json", 8), GPUBOT_TIMEZONE="UTC", **settings),
                slack,
            )
            try:
                deadline = time.monotonic() + 60
                while settings and not any(c.params.get("channel") == "C0DIGEST" for c in posted):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the digest was never posted:\n{target.log()}")
                    await asyncio.sleep(0.1)
                await asyncio.sleep(2.0)
                results[name] = {"rss_mib": round(target.rss_mib(), 1)}
            finally:
                await target.stop()
                await slack.stop()
    results["difference_mib"] = round(
        results["after posting a digest"]["rss_mib"] - results["without a digest"]["rss_mib"], 1
    )
    return results


def run(server: str, quick: bool) -> dict[str, Any]:
    days, people, repeats, reports = (30, 10, 5, 20) if quick else (365, 50, 30, 300)
    results: dict[str, Any] = {"history": {"days": days, "people": people, "gpus": HOSTS * GPUS_PER_HOST}}
    with _sqlite() as engine:
        results["usage query, SQLite"] = _queries(engine, days, people, repeats)
    with _postgres(server) as engine:
        results["usage query, PostgreSQL"] = _queries(engine, days, people, repeats)
    with _sqlite() as engine:
        results["counting, SQLite"] = _counting(engine, reports)
    with _postgres(server) as engine:
        results["counting, PostgreSQL"] = _counting(engine, reports)
    results["digest memory"] = asyncio.run(_digest_memory())
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="a smoke run: a month of history, few repeats")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="a SQLAlchemy URL of any database on the server")
    args = parser.parse_args(argv)
    results = run(args.server, args.quick)
    args.json_out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
