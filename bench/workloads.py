"""What the load generator sends, and how a reply is judged: one function per workload.

A workload is a coroutine `op(worker) -> list[Sample]` that runs one or more envelopes in sequence for
one simulated person, so N workers keep exactly N envelopes in flight (a closed loop). Each worker is
its own Slack user and, for claims, owns the `worker`-th GPU that answers, so no two workers contend for a GPU.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fleet import responding_gpu
from loopback import Answered, LoopbackSlack

from gpubot.slack import actions
from gpubot.standin import Ack, StandinError
from gpubot.standin.web_api import Body

# Slack's own limit: an envelope not acked within 3 s counts as failed (and an event is retried).
SLACK_ACK_LIMIT_S = 3.0
# How long the harness waits before calling a reply lost.
REPLY_TIMEOUT_S = 10.0

COMMAND_KINDS = ("status", "claim", "release", "help", "realtime")
# The throughput and memory mix: what a lab's channel sends, status twice as often as the rest.
MIX = ("status", "claim", "realtime", "status", "release", "help")


@dataclass(frozen=True)
class Sample:
    """One envelope's outcome.

    Attributes:
        kind: the workload kind ("status", "claim", …, "home").
        ack_s: envelope sent → ack received.
        reply_s: envelope sent → the visible reply reached the stand-in (the ack itself for slash
            commands and forms, which gpubot answers inside the ack; the `views.publish` for a Home
            open; the `views.open` for a button that opens the claim form).
        ok: the reply was the one expected.
        lost: no ack or no reply came within `REPLY_TIMEOUT_S`.
    """

    kind: str
    ack_s: float
    reply_s: float
    ok: bool
    lost: bool = False


Op = Callable[[int], Awaitable[list[Sample]]]
ReplyCheck = Callable[[str, Body | None], bool]
# What worker N types after `/gpu` for a command of a kind.
CommandText = Callable[[str, int], str]


def user_of(worker: int, prefix: str = "U0CMD") -> str:
    """The Slack user id worker `worker` acts as."""
    return f"{prefix}{worker:04d}"


def command_text(kind: str, worker: int) -> str:
    """What worker `worker` types after `/gpu` for a command of `kind`."""
    if kind == "claim":
        return f"claim {responding_gpu(worker)} benchmark run 2h"
    if kind == "release":
        return f"release {responding_gpu(worker)}"
    return kind


def gpubot_reply_ok(kind: str, payload: Body | None) -> bool:
    """Whether gpubot's ack carries the reply a successful `kind` command gets (not an error message)."""
    text = str((payload or {}).get("text", ""))
    if not (payload and payload.get("blocks")):
        return False
    expected = {
        "status": lambda: "GPUs free" in text,
        "claim": lambda: text.startswith("You have GPU"),
        "release": lambda: text == "Released",
        "help": lambda: text == "gpubot commands",
        "realtime": lambda: text.startswith("Live GPU load"),
    }
    return expected[kind]()


def floor_reply_ok(reply_text: str) -> ReplyCheck:
    """A floor answers every `/gpu` with the same constant reply."""

    def check(kind: str, payload: Body | None) -> bool:
        return bool(payload) and payload is not None and payload.get("text") == reply_text

    return check


async def _command(
    slack: LoopbackSlack, kind: str, worker: int, check: ReplyCheck, text_of: CommandText = command_text
) -> Sample:
    sent_at = time.perf_counter()
    try:
        ack = await slack.command(text_of(kind, worker), user_of(worker), REPLY_TIMEOUT_S)
    except (StandinError, asyncio.TimeoutError):
        waited = time.perf_counter() - sent_at
        return Sample(kind, waited, waited, ok=False, lost=True)
    return _sample_of(kind, ack, check)


def _sample_of(kind: str, ack: Ack, check: ReplyCheck) -> Sample:
    # The reply travels in the ack, so the ack's latency is the reply's.
    return Sample(kind, ack.latency_s, ack.latency_s, ok=check(kind, ack.payload))


def commands(
    slack: LoopbackSlack, sequence: Sequence[str], check: ReplyCheck, text_of: CommandText = command_text
) -> Op:
    """A workload: each op runs the commands of `sequence` one after another for its worker.

    Claim and release ops come in pairs within `sequence`, so every op leaves its worker's GPU free. `text_of`
    writes each command (the fleet names its GPUs `HOST:GPU`).
    """

    async def op(worker: int) -> list[Sample]:
        return [await _command(slack, kind, worker, check, text_of) for kind in sequence]

    return op


def home_opens(slack: LoopbackSlack) -> Op:
    """A workload: each op opens the worker's Home tab and waits for the view to be published."""

    async def op(worker: int) -> list[Sample]:
        return [await _answered("home", lambda: slack.open_home(user_of(worker, "U0HOME"), REPLY_TIMEOUT_S))]

    return op


def claim_form_buttons(slack: LoopbackSlack) -> Op:
    """A workload: each op clicks the Home tab's "Claim GPUs…" button and waits for the form to open."""

    async def op(worker: int) -> list[Sample]:
        user = user_of(worker, "U0BUTTON")
        return [await _answered("button", lambda: slack.click(actions.CLAIM_FORM, "open", user, REPLY_TIMEOUT_S))]

    return op


def incomplete_claim_forms(slack: LoopbackSlack) -> Op:
    """A workload: each op submits the claim form without a purpose; the ack must carry the field error.

    The form is answered inside the ack (`response_action: errors`) after the claim rules ran, so this
    is the interactive envelope that does the most before its ack, without changing any state.
    """
    state = {
        actions.GPUS_INPUT: {actions.GPUS_INPUT: {"type": "multi_static_select", "selected_options": [{"value": "0"}]}},
        actions.PURPOSE_INPUT: {actions.PURPOSE_INPUT: {"type": "plain_text_input", "value": ""}},
        actions.DURATION_INPUT: {
            actions.DURATION_INPUT: {"type": "static_select", "selected_option": {"value": "3600"}}
        },
    }

    async def op(worker: int) -> list[Sample]:
        sent_at = time.perf_counter()
        try:
            ack = await slack.submit(actions.CLAIM_MODAL_CALLBACK, state, user_of(worker, "U0FORM"), REPLY_TIMEOUT_S)
        except (StandinError, asyncio.TimeoutError):
            waited = time.perf_counter() - sent_at
            return [Sample("form", waited, waited, ok=False, lost=True)]
        payload = ack.payload or {}
        ok = payload.get("response_action") == "errors" and actions.PURPOSE_INPUT in payload.get("errors", {})
        return [Sample("form", ack.latency_s, ack.latency_s, ok=ok)]

    return op


async def _answered(kind: str, send: Callable[[], Awaitable[Answered]]) -> Sample:
    sent_at = time.perf_counter()
    try:
        answered = await send()
    except (StandinError, asyncio.TimeoutError):
        waited = time.perf_counter() - sent_at
        return Sample(kind, waited, waited, ok=False, lost=True)
    ok = answered.call.http_status == 200 and bool(answered.call.response.get("ok"))
    return Sample(kind, answered.ack.latency_s, answered.call_latency_s, ok=ok)


@dataclass(frozen=True)
class LoopRun:
    """What a closed-loop run produced."""

    samples: list[Sample]
    wall_s: float


async def closed_loop(op: Op, workers: int, *, ops: int | None = None, duration_s: float | None = None) -> LoopRun:
    """Run `op` in `workers` concurrent loops until `ops` ops ran in all, or for `duration_s` seconds.

    Each worker starts its next op the moment its previous one finished, so exactly `workers`
    envelopes are in flight throughout (less only at the very end of an `ops`-bounded run).

    Raises:
        ValueError: neither or both of `ops` and `duration_s` given.
    """
    if (ops is None) == (duration_s is None):
        raise ValueError("give exactly one of ops and duration_s")
    samples: list[Sample] = []
    started = time.perf_counter()
    deadline = started + duration_s if duration_s is not None else None
    remaining = ops if ops is not None else 0

    def more() -> bool:
        nonlocal remaining
        if deadline is not None:
            return time.perf_counter() < deadline
        if remaining <= 0:
            return False
        remaining -= 1
        return True

    async def worker_loop(worker: int) -> None:
        while more():
            samples.extend(await op(worker))

    await asyncio.gather(*(worker_loop(worker) for worker in range(workers)))
    return LoopRun(samples, time.perf_counter() - started)
