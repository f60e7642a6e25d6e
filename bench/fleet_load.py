"""The fleet on PostgreSQL: 32 hosts of 8 GPUs, 3 `gpubot serve` daemons behind one Slack app.

    python bench/fleet_load.py --json-out fleet.json [--quick] [--server postgresql+psycopg://…]

On a scratch database of its own: `fleet_agents.py` reports 31 simulated hosts of 8 GPUs every interval (as 31
agents would), and three `gpubot serve` share one loopback Slack, which hands each envelope to one of them at
random as Slack does: one on a fake 8-GPU host of its own, two with no GPUs. Measured:
  * `/gpu status`, `/gpu realtime`, and claim + release of a GPU of the worker's own (`HOST:GPU`), at 1, 10 and
    50 in flight (closed loops), beside the tuned floor (status: no I/O) and the durable PostgreSQL floor (one
    committed INSERT per command) measured in the same run, so ratios stay fair on a noisy machine;
  * the PostgreSQL server's CPU (all its processes) over a quiet window while the hosts report and the daemons
    idle: the cost of ingesting the fleet's telemetry, usage counting included;
  * failover: status at 10 in flight, one daemon killed with SIGKILL, and the next 20 answers the survivors
    give beside the steady p50/p99, with how many envelopes were lost with the daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import floor_tuned
from fleet import write_fake_host
from fleet_agents import host_name
from loopback import LoopbackSlack
from percentiles import summarize_s
from pg_scratch import DEFAULT_SERVER, scratch_database
from targets import (
    BENCH_DIR,
    FLOOR_DURABLE,
    FLOOR_TUNED,
    GPUBOT,
    RunningTarget,
    TargetSpec,
    clean_environment,
    floor_spec,
    gpubot_spec,
    start_target,
)
from workloads import (
    REPLY_TIMEOUT_S,
    Op,
    Sample,
    closed_loop,
    commands,
    floor_reply_ok,
    gpubot_reply_ok,
    user_of,
)

from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import upgrade_to_head

SIMULATED_HOSTS = 31
GPUS_PER_HOST = 8
SERVE_HOST = "serve-gpu"
IN_FLIGHT = (1, 10, 50)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def fleet_command(kind: str, worker: int) -> str:
    """Worker N's command: claims and releases name a GPU of its own on a simulated host."""
    gpu = f"{host_name(worker // GPUS_PER_HOST)}:{worker % GPUS_PER_HOST}"
    if kind == "claim":
        return f"claim {gpu} benchmark run 2h"
    if kind == "release":
        return f"release {gpu}"
    return kind


FAILED_REPLIES: list[str] = []


def fleet_reply_ok(kind: str, payload: Any) -> bool:
    """gpubot's check of a reply; the first few wrong replies are kept for the report, to say why."""
    ok = gpubot_reply_ok(kind, payload)
    if not ok and len(FAILED_REPLIES) < 5:
        FAILED_REPLIES.append(f"{kind}: {json.dumps(payload)[:600]}")
    return ok


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _postgres_cpu_s() -> float:
    """User plus system CPU seconds of every process named postgres on this machine."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name.startswith("postgres"):
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / _CLOCK_TICKS


def _summary(samples: list[Sample]) -> dict[str, Any]:
    answered = [sample.reply_s for sample in samples if not sample.lost]
    summary = summarize_s(answered)
    return {
        **(summary.as_dict() if summary else {"count": 0}),
        "failed": sum(1 for sample in samples if not sample.ok),
        "lost": sum(1 for sample in samples if sample.lost),
    }


async def _agents(url: str, interval_s: float) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BENCH_DIR / "fleet_agents.py"),
        "--url",
        url,
        "--hosts",
        str(SIMULATED_HOSTS),
        "--gpus",
        str(GPUS_PER_HOST),
        "--interval",
        str(interval_s),
        env=clean_environment(),
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    line = await asyncio.wait_for(process.stderr.readline(), 60)
    if b"ready" not in line:
        raise RuntimeError(f"the simulated agents did not start: {line!r}")
    return process


async def _serves(slack: LoopbackSlack, url: str, state: Path) -> list[RunningTarget]:
    fake = write_fake_host(state / "gpus.json", GPUS_PER_HOST)
    started = []
    for number in range(3):
        settings = {"GPUBOT_DATABASE_URL": url, "GPUBOT_HOST_NAME": SERVE_HOST if number == 0 else f"gpuless-{number}"}
        if number:
            settings["GPUBOT_GPU_BACKEND"] = "none"
        spec = gpubot_spec(slack, state, fake, name=f"gpubot-{number}", **settings)
        started.append(await start_target(spec, slack))
    return started


async def _wait_for_fleet(slack: LoopbackSlack, hosts: int) -> None:
    deadline = time.monotonic() + 60
    seen: set[int] = set()
    while time.monotonic() < deadline:
        ack = await slack.command("status", "U0WAIT", REPLY_TIMEOUT_S)
        if f"on {hosts} hosts" in str((ack.payload or {}).get("text", "")):
            seen.add(ack.connection)
            if len(seen) == 3:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the daemons never all listed {hosts} hosts")


async def _latency(
    slack: LoopbackSlack,
    floors: dict[str, LoopbackSlack],
    targets: dict[str, list[RunningTarget]],
    quick: bool,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Each phase's latency, with the CPU its app's processes used per envelope (the 3 daemons' together)."""
    ops = {1: 20, 10: 100, 50: 250} if quick else {1: 200, 10: 1000, 50: 2500}
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for in_flight in IN_FLIGHT:
        row: dict[str, dict[str, Any]] = {}
        count = ops[in_flight]
        for name, floor in ((FLOOR_TUNED, "floor-tuned status"), (FLOOR_DURABLE, "floor-durable-pg")):
            check = floor_reply_ok(floor_tuned.REPLY_TEXT)
            row[floor] = await _phase(commands(floors[name], ("status",), check), in_flight, count, targets[name])
        for kinds in (("status",), ("realtime",), ("claim", "release")):
            op = commands(slack, kinds, fleet_reply_ok, fleet_command)
            phase = await _phase(op, in_flight, count, targets[GPUBOT], kinds)
            row.update(phase if len(kinds) > 1 else {kinds[0]: phase})
        results[str(in_flight)] = row
    return results


async def _phase(
    op: Op, in_flight: int, count: int, processes: list[RunningTarget], kinds: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One closed loop: its latency summary (per kind, when `kinds` has several) and CPU ms per envelope."""
    before = sum(process.cpu_s() for process in processes)
    run = await closed_loop(op, in_flight, ops=count)
    cpu_ms = (sum(process.cpu_s() for process in processes) - before) * 1000 / max(len(run.samples), 1)
    if len(kinds) > 1:
        return {
            kind: {**_summary([s for s in run.samples if s.kind == kind]), "cpu_ms_per_envelope": round(cpu_ms, 3)}
            for kind in kinds
        }
    return {**_summary(run.samples), "cpu_ms_per_envelope": round(cpu_ms, 3)}


async def _ingest_cpu(window_s: float) -> dict[str, Any]:
    before, started = _postgres_cpu_s(), time.perf_counter()
    await asyncio.sleep(window_s)
    used, elapsed = _postgres_cpu_s() - before, time.perf_counter() - started
    return {"window_s": round(elapsed, 1), "postgres_cpu_s": round(used, 3), "core_share": round(used / elapsed, 4)}


async def _failover(slack: LoopbackSlack, victim: RunningTarget, steady_s: float) -> dict[str, Any]:
    """Status at 10 in flight; SIGKILL one daemon after `steady_s`; the answers before and after it."""
    answers: list[tuple[float, float, bool]] = []  # (sent at, latency, lost)
    killed_at: float | None = None
    done = asyncio.Event()

    async def worker(number: int) -> None:
        while not done.is_set():
            sent = time.perf_counter()
            try:
                ack = await slack.command("status", user_of(number, "U0FAIL"), 5.0)
                answers.append((sent, ack.latency_s, False))
            except Exception:
                answers.append((sent, time.perf_counter() - sent, True))

    workers = [asyncio.create_task(worker(number)) for number in range(10)]
    await asyncio.sleep(steady_s)
    victim.process.send_signal(signal.SIGKILL)
    killed_at = time.perf_counter()
    await victim.process.wait()
    # At least the 20 answers reported, however slow a loaded machine makes them.
    deadline = time.monotonic() + max(steady_s, 30.0)
    while time.monotonic() < deadline:
        await asyncio.sleep(steady_s / 4)
        if sum(1 for sent, _, lost in answers if sent >= killed_at and not lost) >= 20:
            break
    done.set()
    await asyncio.gather(*workers)
    steady = [latency for sent, latency, lost in answers if sent < killed_at and not lost]
    after = sorted((sent, latency) for sent, latency, lost in answers if sent >= killed_at and not lost)
    lost = sum(1 for sent, _, was_lost in answers if was_lost and sent >= killed_at - 5.0)
    first = [latency for _, latency in after[:20]]
    steady_summary = summarize_s(steady)
    after_summary = summarize_s(first)
    return {
        "steady": steady_summary.as_dict() if steady_summary else None,
        "first_20_after_kill": after_summary.as_dict() if after_summary else None,
        "lost_with_the_daemon": lost,
    }


async def run(server: str, quick: bool) -> dict[str, Any]:
    interval_s = 2.0
    with scratch_database(server) as url, tempfile.TemporaryDirectory(prefix="gpubot-fleet-") as scratch:
        state = Path(scratch)
        engine = make_engine(url)
        upgrade_to_head(engine)
        engine.dispose()
        agents = await _agents(url, interval_s)
        slack = await LoopbackSlack().start()
        floors = {FLOOR_TUNED: await LoopbackSlack().start(), FLOOR_DURABLE: await LoopbackSlack().start()}
        running: list[RunningTarget] = []
        targets: dict[str, list[RunningTarget]] = {}
        try:
            for kind, floor_slack in floors.items():
                spec = floor_spec(kind, floor_slack, state)
                if kind == FLOOR_DURABLE:
                    spec = TargetSpec(spec.name, spec.argv, {**spec.env, "FLOOR_DATABASE": _libpq(url)})
                targets[kind] = [await start_target(spec, floor_slack)]
                running += targets[kind]
            serves = await _serves(slack, url, state)
            targets[GPUBOT] = serves
            running += serves
            await _wait_for_fleet(slack, SIMULATED_HOSTS + 1)
            ingest = await _ingest_cpu(5.0 if quick else 20.0)
            latency = await _latency(slack, floors, targets, quick)
            failover = await _failover(slack, serves[2], 1.0 if quick else 3.0)
            return {
                "fleet": {"hosts": SIMULATED_HOSTS + 1, "gpus_per_host": GPUS_PER_HOST, "serve_daemons": 3},
                "report_interval_s": interval_s,
                "latency": latency,
                "ingest": ingest,
                "failover": failover,
                "wrong_replies": FAILED_REPLIES,
            }
        finally:
            for target in running:
                await target.stop()
            agents.send_signal(signal.SIGTERM)
            await agents.wait()
            for loopback in (slack, *floors.values()):
                await loopback.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few envelopes, short windows")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="a SQLAlchemy URL of any database on the server")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.server, args.quick))
    args.json_out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
