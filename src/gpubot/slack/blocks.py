"""Block Kit views: pure functions from gpubot state to Slack messages. No I/O, no Slack client.

Every builder keeps within Block Kit's limits however much state there is: with many GPUs the
listing compacts (several GPUs to a section, then "and N more") rather than overflowing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gpubot.core.commands import USAGES
from gpubot.core.durations import format_duration
from gpubot.core.errors import GpubotError
from gpubot.core.load import LoadLevel, LoadThresholds, load_level
from gpubot.core.models import Claim, GpuSample, HostSample, OutboxItem, ProcessSample
from gpubot.core.service import ClaimOutcome, ClaimPolicy, Dashboard, ExtendOutcome, GpuRow, ReleaseOutcome
from gpubot.slack.mrkdwn import date_token, escape, escape_except_mentions, mention, truncate

Block = dict[str, Any]

MAX_MESSAGE_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
MAX_CONTEXT_ELEMENTS = 10
# Room left in a message for the header, summary and footer around the per-GPU blocks.
_FRAME_BLOCKS = 4
_COMPACT_PURPOSE_CHARS = 40
_PROCESSES_SHOWN = 5

LOAD_BADGES = {
    LoadLevel.HIGH: "🔥",
    LoadLevel.ACTIVE: "⚡",
    LoadLevel.IDLE: "💤",
    LoadLevel.UNKNOWN: "❔",
    LoadLevel.LOST: "⚠️",
}


@dataclass(frozen=True)
class Message:
    """A Slack message: `text` is the plain notification fallback, `blocks` what people see."""

    text: str
    blocks: list[Block]


def status_message(dashboard: Dashboard, policy: ClaimPolicy, timezone: ZoneInfo) -> Message:
    """The allocation dashboard: every GPU, free or held, by whom, for what and until when."""
    total = len(dashboard.rows)
    free = dashboard.free_count
    summary = f"*{free} of {total} GPUs free*" if total else "*No GPUs found on this host.*"
    compact = total > MAX_MESSAGE_BLOCKS - _FRAME_BLOCKS
    lines = [_status_line(row, dashboard.now, timezone, compact) for row in dashboard.rows]
    blocks = [
        header(f"GPUs on {dashboard.host}"),
        section(summary),
        *pack_lines(lines, MAX_MESSAGE_BLOCKS - _FRAME_BLOCKS, noun="GPUs"),
        context(
            f"Claim with `{escape(USAGES['claim'].syntax)}` · durations {format_duration(policy.min_duration)}"
            f" to {format_duration(policy.max_duration)}, default {format_duration(policy.default_duration)}"
            " · `/gpu help`"
        ),
    ]
    return Message(text=f"{free} of {total} GPUs free on {dashboard.host}", blocks=blocks)


def realtime_message(dashboard: Dashboard, sample: HostSample | None, thresholds: LoadThresholds) -> Message:
    """Live telemetry per GPU: load, temperature, utilization, memory, power and processes."""
    if sample is None:
        return Message(
            text="No telemetry yet",
            blocks=[section("⏳ No telemetry has been read yet; try again in a few seconds.")],
        )
    compact = len(dashboard.rows) > MAX_MESSAGE_BLOCKS - _FRAME_BLOCKS
    lines = [_realtime_line(row, thresholds, compact) for row in dashboard.rows]
    driver = f"driver {escape(sample.driver_version)}" if sample.driver_version else "driver n/a"
    legend = " · ".join(f"{LOAD_BADGES[level]} {level.value}" for level in LoadLevel)
    blocks = [
        header(f"Live GPU load on {dashboard.host}"),
        context(driver, legend),
        *pack_lines(lines, MAX_MESSAGE_BLOCKS - _FRAME_BLOCKS, noun="GPUs"),
    ]
    if not dashboard.rows:
        blocks.append(section("No GPUs found on this host."))
    return Message(text=f"Live GPU load on {dashboard.host}", blocks=blocks)


def claim_message(outcome: ClaimOutcome, now: datetime, timezone: ZoneInfo) -> Message:
    """The reply to a successful claim, with the line that puts the GPUs to use."""
    claims = outcome.claims
    indices = ",".join(str(claim.gpu_index) for claim in claims)
    first = claims[0]
    noun = "GPU" if len(claims) == 1 else "GPUs"
    text = (
        f"✅ You have *{noun} {indices}* until {date_token(first.ends_at, timezone)}"
        f" ({format_duration(first.ends_at - now)}).\n"
        f"for: {escape(first.purpose)}\n"
        # PCI_BUS_ID makes CUDA number GPUs as nvidia-smi and NVML do; its default order can differ.
        f"Use {'it' if len(claims) == 1 else 'them'} with `CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES={indices}`"
    )
    return Message(text=f"You have {noun} {indices}", blocks=[section(text)])


def release_message(outcome: ReleaseOutcome) -> Message:
    """The reply to a release, naming whose claims an admin ended."""
    lines = []
    if outcome.released:
        lines.append(f"✅ Released {_gpu_list(outcome.released)}.")
    for claim in outcome.forced:
        lines.append(f"✅ Released GPU {claim.gpu_index}, held by {mention(claim.user_id)}; they have been told.")
    if not lines:
        lines.append("Nothing to release: those claims had already ended.")
    return Message(text="Released", blocks=[section("\n".join(lines))])


def extend_message(outcome: ExtendOutcome, policy: ClaimPolicy, now: datetime, timezone: ZoneInfo) -> Message:
    """The reply to an extension, saying when the maximum cut it short."""
    lines = [
        f"✅ GPU {claim.gpu_index} now ends {date_token(claim.ends_at, timezone)}"
        f" ({format_duration(claim.ends_at - now)} left)."
        for claim in outcome.claims
    ]
    if outcome.capped:
        lines.append(f"A claim runs at most {format_duration(policy.max_duration)} from now, so I capped it there.")
    return Message(text="Extended", blocks=[section("\n".join(lines))])


def help_message(policy: ClaimPolicy) -> Message:
    """Every command with an example."""
    blocks = [header("gpubot: share the GPUs")]
    for usage in USAGES.values():
        blocks.append(section(f"*`{escape(usage.syntax)}`*\n{escape(usage.summary)}\ne.g. `{escape(usage.example)}`"))
    blocks.append(
        context(
            f"Durations look like `30m`, `2h` or `1h30m`: from {format_duration(policy.min_duration)}"
            f" to {format_duration(policy.max_duration)}, {format_duration(policy.default_duration)} when"
            " you name none. Admins may release anyone's claim."
        )
    )
    return Message(text="gpubot commands", blocks=blocks)


def error_message(error: GpubotError) -> Message:
    """What went wrong and, where it helps, the right syntax. User text in the message is escaped."""
    blocks = [section("⚠️ " + escape_except_mentions(error.message, error.mentions))]
    if error.usage:
        blocks.append(section(f"```{escape(error.usage)}```"))
    return Message(text=error.message if not error.mentions else "That did not work", blocks=blocks)


def internal_error_message() -> Message:
    """What a person sees when gpubot itself failed; the details go to the log."""
    return Message(
        text="Something went wrong",
        blocks=[
            section(
                "⚠️ Something went wrong on gpubot's side. `/gpu status` shows where things stand;"
                " the admin can find the details in the log."
            )
        ],
    )


def notice_message(item: OutboxItem, timezone: ZoneInfo) -> Message:
    """The DM a holder is owed when an admin ended their claim."""
    claim = item.claim
    actor = mention(item.notice.actor_id) if item.notice.actor_id else "an admin"
    text = (
        f"Your claim on *GPU {claim.gpu_index}* ({escape(claim.purpose)}) was released by {actor}"
        f" at {date_token(claim.ended_at or claim.ends_at, timezone)}."
    )
    return Message(text=f"Your claim on GPU {claim.gpu_index} was released", blocks=[section(text)])


def pack_lines(lines: Sequence[str], max_blocks: int, noun: str) -> list[Block]:
    """One section per line while they fit; otherwise several lines per section, then "and N more"."""
    if len(lines) <= max_blocks:
        return [section(line) for line in lines]
    blocks: list[Block] = []
    chunk: list[str] = []
    shown = 0
    for line in lines:
        if chunk and len("\n".join([*chunk, line])) > MAX_SECTION_CHARS:
            if len(blocks) == max_blocks - 1:
                break
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
        shown += 1
    if chunk and len(blocks) < max_blocks - 1:
        blocks.append(section("\n".join(chunk)))
    else:
        shown -= len(chunk)
    if shown < len(lines):
        blocks.append(context(f"…and {len(lines) - shown} more {noun}"))
    return blocks


def header(text: str) -> Block:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(text, MAX_HEADER_CHARS), "emoji": True},
    }


def section(text: str) -> Block:
    # verbatim: Slack must not auto-link or auto-mention anything inside text a user typed.
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_CHARS), "verbatim": True},
    }


def context(*texts: str) -> Block:
    elements = [{"type": "mrkdwn", "text": truncate(text, MAX_SECTION_CHARS), "verbatim": True} for text in texts]
    return {"type": "context", "elements": elements[:MAX_CONTEXT_ELEMENTS]}


def _status_line(row: GpuRow, now: datetime, timezone: ZoneInfo, compact: bool) -> str:
    gpu, claim = row.gpu, row.claim
    model = escape(gpu.name or "unknown model")
    lost = " · ⚠️ not responding" if row.sample is not None and row.sample.lost else ""
    if compact:
        if claim is None:
            return f"🟢 *{gpu.index}* free{lost}"
        purpose = escape(truncate(claim.purpose, _COMPACT_PURPOSE_CHARS))
        return (
            f"🔴 *{gpu.index}* {mention(claim.user_id)} until {date_token(claim.ends_at, timezone)} · {purpose}{lost}"
        )
    if claim is None:
        return f"🟢 *GPU {gpu.index}* · {model} — *free*{lost}"
    return (
        f"🔴 *GPU {gpu.index}* · {model} — {mention(claim.user_id)} until"
        f" {date_token(claim.ends_at, timezone)} ({format_duration(claim.time_left(now))} left){lost}\n"
        f"for: {escape(claim.purpose)}"
    )


def _realtime_line(row: GpuRow, thresholds: LoadThresholds, compact: bool) -> str:
    gpu, sample = row.gpu, row.sample
    holder = f" · held by {mention(row.claim.user_id)}" if row.claim else ""
    if sample is None:
        return f"❔ *GPU {gpu.index}* · no telemetry for this GPU{holder}"
    level = load_level(sample, thresholds)
    badge = LOAD_BADGES[level]
    if compact:
        return (
            f"{badge} *{gpu.index}* {_pct(sample.utilization_gpu_pct)} · {_temp(sample)} · "
            f"{_memory(sample)} · {len(sample.processes)} procs{holder}"
        )
    model = escape(sample.name or gpu.name or "unknown model")
    lines = [
        f"{badge} *GPU {gpu.index}* · {model} · *{level.value}*{holder}",
        f"🌡 {_temp(sample)} · util {_pct(sample.utilization_gpu_pct)} · mem {_memory(sample)} · power {_power(sample)}",
    ]
    lines.extend(_process_lines(sample.processes))
    return "\n".join(lines)


def _process_lines(processes: Sequence[ProcessSample]) -> list[str]:
    if not processes:
        return ["no processes"]
    ordered = sorted(processes, key=lambda p: p.used_memory_mib or 0, reverse=True)
    lines = [
        f"`{p.pid}` {escape(p.name or 'n/a')} · {escape(p.user or 'n/a')} · {_mib(p.used_memory_mib)}"
        for p in ordered[:_PROCESSES_SHOWN]
    ]
    if len(ordered) > _PROCESSES_SHOWN:
        lines.append(f"…and {len(ordered) - _PROCESSES_SHOWN} more processes")
    return lines


def _gpu_list(claims: Sequence[Claim]) -> str:
    noun = "GPU" if len(claims) == 1 else "GPUs"
    return f"{noun} " + ", ".join(str(claim.gpu_index) for claim in claims)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} %"


def _temp(sample: GpuSample) -> str:
    return "n/a" if sample.temperature_c is None else f"{sample.temperature_c} °C"


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,} MiB"


def _memory(sample: GpuSample) -> str:
    used, total = sample.memory_used_mib, sample.memory_total_mib
    if used is None and total is None:
        return "n/a"
    used_text = "n/a" if used is None else f"{used:,}"
    total_text = "n/a" if total is None else f"{total:,} MiB"
    return f"{used_text} / {total_text} ({_pct(sample.memory_used_pct)})"


def _power(sample: GpuSample) -> str:
    draw, limit = sample.power_draw_w, sample.power_limit_w
    if draw is None and limit is None:
        return "n/a"
    draw_text = "n/a" if draw is None else f"{draw:.0f}"
    limit_text = "n/a" if limit is None else f"{limit:.0f}"
    return f"{draw_text} / {limit_text} W"
