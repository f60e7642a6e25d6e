"""Expiry precision: how late after its due time a warning DM and an expiry DM reach Slack, over short claims.

gpubot runs with `GPUBOT_MIN_DURATION=1s` and a short `GPUBOT_WARN_BEFORE`. Short claims are made
one after another at an interval that is not a divisor of the 2 s due-work tick, so their due times
fall all over the tick's phase. Every claim lasts longer than it takes to make them all: gpubot also
expires overdue claims before it acts on any claim or release, and an expiry caught that way would
not measure the tick. For each claim the due times come from the database
(`ends_at - warn_before` for the warning, `ends_at` for the expiry) and the arrival times are when
the stand-in received the `chat.postMessage` of each DM; the lateness is the difference, both on
this machine's wall clock. The moment the daemon marked the claim warned or expired (its audit
events) is reported too, which separates the tick's delay from the DM delivery.

    python bench/expiry_precision.py --json-out expiry.json [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fleet import responding_gpu, write_fake_host
from loopback import LoopbackSlack
from percentiles import summarize_s
from sqlalchemy import select
from targets import gpubot_spec, start_target
from workloads import REPLY_TIMEOUT_S, gpubot_reply_ok

from gpubot.core.models import EventKind
from gpubot.standin import Call, payloads
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.tables import claim_events

# gpubot's due-work tick (daemon._DUE_WORK_INTERVAL); a DM can be this late from the tick alone.
TICK_S = 2.0
# Not a divisor of the tick, so successive claims fall due at different points of its phase.
_STAGGER_S = 0.29
# Waited for the last DMs beyond the last due time: two ticks and the DM round trip.
_GRACE_S = 3 * TICK_S


@dataclass(frozen=True)
class Plan:
    """How many claims, how long each, and how long before its end the warning is due."""

    claims: int
    duration_s: int
    warn_before_s: int


def _user(number: int) -> str:
    return f"U0EXP{number:04d}"


def _wall(perf_s: float, offset_s: float) -> float:
    return perf_s + offset_s


async def _claim_all(slack: LoopbackSlack, plan: Plan) -> None:
    for number in range(plan.claims):
        started = time.perf_counter()
        text = f"claim {responding_gpu(number)} expiry benchmark {plan.duration_s}s"
        ack = await slack.command(text, _user(number), REPLY_TIMEOUT_S)
        if not gpubot_reply_ok("claim", ack.payload):
            raise RuntimeError(f"claim {number} was refused: {ack.payload}")
        await asyncio.sleep(max(_STAGGER_S - (time.perf_counter() - started), 0.0))


def _lateness(
    database: Path, dms: list[Call], plan: Plan, perf_to_wall_s: float
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Per kind ("warning", "expiry"): seconds from due to DM received, and to marked; missing DMs counted."""
    engine = make_engine(f"sqlite:///{database}")
    try:
        store = SqlClaimStore(engine)
        # The audit log, read directly: gpubot itself only writes it.
        with engine.connect() as connection:
            events = connection.execute(select(claim_events.c.claim_id, claim_events.c.kind, claim_events.c.at)).all()
        claims = {claim_id: store.get_claim(claim_id) for claim_id in {event.claim_id for event in events}}
    finally:
        engine.dispose()
    arrivals: dict[tuple[str, str], float] = {}
    for call in dms:
        text = str(call.params.get("text", ""))
        kind = "warning" if "ends soon" in text else "expiry" if "expired" in text else None
        if kind is not None:
            arrivals.setdefault((str(call.params.get("channel")), kind), _wall(call.received_at, perf_to_wall_s))
    marked = {(event.claim_id, EventKind(event.kind)): event.at for event in events}
    late: dict[str, list[float]] = {"warning_dm": [], "expiry_dm": [], "warning_marked": [], "expiry_marked": []}
    missing = {"warning": 0, "expiry": 0}
    warn_before = timedelta(seconds=plan.warn_before_s)
    for claim in claims.values():
        if claim is None:
            continue
        due: dict[str, datetime] = {"warning": claim.ends_at - warn_before, "expiry": claim.ends_at}
        event_kinds = {"warning": EventKind.WARNED, "expiry": EventKind.EXPIRED}
        for kind, due_at in due.items():
            arrived = arrivals.get((payloads.dm_channel_id(claim.user_id), kind))
            if arrived is None:
                missing[kind] += 1
            else:
                late[f"{kind}_dm"].append(arrived - due_at.timestamp())
            marked_at = marked.get((claim.id, event_kinds[kind]))
            if marked_at is not None:
                late[f"{kind}_marked"].append((marked_at - due_at).total_seconds())
    return late, missing


async def run(plan: Plan) -> dict[str, Any]:
    """Make the claims, wait for every DM, and work out how late each one was.

    Raises:
        ValueError: the claims would not all be made before the first one ends.
    """
    if plan.claims * _STAGGER_S >= plan.duration_s:
        raise ValueError(f"{plan.claims} claims {_STAGGER_S} s apart take longer than one lasts ({plan.duration_s} s)")
    slack = await LoopbackSlack().start()
    dms = slack.calls.keep("chat.postMessage")
    try:
        with tempfile.TemporaryDirectory(prefix="gpubot-bench-") as state_name:
            state = Path(state_name)
            spec = gpubot_spec(
                slack,
                state,
                write_fake_host(state / "gpus.json", max(responding_gpu(plan.claims - 1) + 1, 8)),
                GPUBOT_MIN_DURATION="1s",
                GPUBOT_WARN_BEFORE=f"{plan.warn_before_s}s",
            )
            target = await start_target(spec, slack)
            try:
                perf_to_wall_s = time.time() - time.perf_counter()
                await _claim_all(slack, plan)
                deadline = time.perf_counter() + plan.duration_s + _GRACE_S
                while time.perf_counter() < deadline and len(dms) < 2 * plan.claims:
                    await asyncio.sleep(0.1)
            finally:
                exit_code = await target.stop()
            late, missing = _lateness(state / "gpubot.db", dms, plan, perf_to_wall_s)
    finally:
        await slack.stop()
    figures: dict[str, Any] = {
        "claims": plan.claims,
        "duration_s": plan.duration_s,
        "warn_before_s": plan.warn_before_s,
        "tick_s": TICK_S,
        "missing_dms": missing,
        "exit_code": exit_code,
    }
    for key, values in late.items():
        # Lateness in seconds, reported in ms like every other latency; early would be negative.
        summary = summarize_s(values)
        figures[f"{key}_late"] = summary.as_dict() if summary else None
        figures[f"{key}_early"] = sum(1 for value in values if value < 0)
    return figures


def main(argv: list[str] | None = None) -> int:
    """Measure expiry precision and write the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json-out", type=Path, required=True, help="where to write the figures")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 claims of 3 s")
    args = parser.parse_args(argv)
    plan = (
        Plan(claims=3, duration_s=3, warn_before_s=2) if args.quick else Plan(claims=50, duration_s=16, warn_before_s=4)
    )
    args.json_out.write_text(json.dumps(asyncio.run(run(plan)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
