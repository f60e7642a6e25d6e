"""Block Kit views: pure functions from gpubot state to Slack messages. No I/O, no Slack client.

Every builder keeps within Block Kit's limits however much state there is: with many GPUs the
listing compacts (several GPUs to a section, then "and N more") rather than overflowing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gpubot.core import figures
from gpubot.core.commands import PURPOSE_MAX_CHARS, USAGES
from gpubot.core.durations import ACCEPTED_FORMS, format_duration
from gpubot.core.errors import DurationOutOfBounds, GpubotError, InvalidPurpose
from gpubot.core.figures import LOAD_BADGES
from gpubot.core.load import LoadThresholds, load_level
from gpubot.core.models import Claim, HostSample, NoticeKind, OutboxItem, ProcessSample
from gpubot.core.service import (
    ClaimOutcome,
    ClaimPolicy,
    Dashboard,
    ExtendOutcome,
    GpuRow,
    HomeState,
    ReleaseOutcome,
)
from gpubot.slack import actions
from gpubot.slack.mrkdwn import date_token, escape, escape_except_mentions, mention, truncate

Block = dict[str, Any]

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SELECT_OPTIONS = 100
MAX_PLAIN_TEXT_CHARS = 75  # button labels, option texts, placeholders
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
MAX_CONTEXT_ELEMENTS = 10
# Room left in a message for the header, summary and footer around the per-GPU blocks.
_FRAME_BLOCKS = 4
_COMPACT_PURPOSE_CHARS = 40
# The Home tab lists at most this many of a person's own claims with buttons; the rest as lines.
_HOME_CLAIMS_WITH_BUTTONS = 10
_QUICK_EXTENSIONS = (timedelta(hours=1), timedelta(hours=2))
_SPARK = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Message:
    """A Slack message: `text` is the plain notification fallback, `blocks` what people see."""

    text: str
    blocks: list[Block]


def status_message(dashboard: Dashboard, policy: ClaimPolicy, timezone: ZoneInfo) -> Message:
    """The allocation dashboard: every GPU, free or held, by whom, for what and until when."""
    total = len(dashboard.rows)
    free = dashboard.free_count
    summary = f"*{free} of {total} GPUs free*{_free_caveats(dashboard)}" if total else "*No GPUs found on this host.*"
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
    legend = figures.load_legend()
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
    result = [section(text)]
    if outcome.warnings:
        result.append(section("\n".join(f"⚠️ {escape(warning)}" for warning in outcome.warnings)))
    return Message(text=f"You have {noun} {indices}", blocks=result)


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
            f"Durations look like {ACCEPTED_FORMS}: from {format_duration(policy.min_duration)}"
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
    # The fallback text is mrkdwn too (notifications, screen readers): escaped like the blocks.
    return Message(text=escape(error.message) if not error.mentions else "That did not work", blocks=blocks)


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


def notice_message(item: OutboxItem, timezone: ZoneInfo, now: datetime) -> Message:
    """The DM a holder is owed: a claim's confirmation, an expiry warning (with buttons), an expiry, or an
    admin's release."""
    claim = item.claim
    if item.notice.kind is NoticeKind.CLAIMED:
        return claim_message(ClaimOutcome((claim,)), now, timezone)
    gpu = f"*GPU {claim.gpu_index}* ({escape(claim.purpose)})"
    if item.notice.kind is NoticeKind.EXPIRY_WARNING:
        text = (
            f"⏰ Your claim on {gpu} ends {date_token(claim.ends_at, timezone)}"
            f" ({format_duration(claim.ends_at - now)} left). Extend it, or release the GPU if you are done."
        )
        buttons = [
            button(
                f"Extend +{format_duration(extra)}",
                actions.extend_action_id(claim.id, extra),
                actions.extend_value(claim.id, extra, claim.ends_at),
            )
            for extra in _QUICK_EXTENSIONS
        ]
        buttons.append(button("Release now", actions.release_action_id(claim.id), str(claim.id), style="danger"))
        return Message(
            text=f"Your claim on GPU {claim.gpu_index} ends soon",
            blocks=[section(text), {"type": "actions", "elements": buttons}],
        )
    if item.notice.kind is NoticeKind.EXPIRED:
        text = (
            f"⌛ Your claim on {gpu} ended {date_token(claim.ends_at, timezone)}; the GPU is free again."
            " Claim it again with `/gpu claim` if you still need it."
        )
        return Message(text=f"Your claim on GPU {claim.gpu_index} expired", blocks=[section(text)])
    text = (
        f"Your claim on {gpu} was released by {_actor(item.notice.actor_id)}"
        f" at {date_token(claim.ended_at or claim.ends_at, timezone)}."
    )
    return Message(text=f"Your claim on GPU {claim.gpu_index} was released", blocks=[section(text)])


def home_view(
    state: HomeState,
    policy: ClaimPolicy,
    timezone: ZoneInfo,
    thresholds: LoadThresholds,
    trends: Mapping[str, Sequence[float | None]],
    flash: Message | None = None,
) -> Block:
    """The App Home tab: the person's own claims with Release/Extend, then every GPU with Claim buttons.

    `flash` is the outcome of what the person just did, shown at the top. Stays within 100 blocks.
    """
    dashboard = state.dashboard
    top: list[Block] = [header("Your GPUs")]
    if flash is not None:
        top.extend(flash.blocks[:2])
    if not state.own_claims:
        top.append(section("You hold no GPUs."))
    for claim in state.own_claims[:_HOME_CLAIMS_WITH_BUTTONS]:
        top.extend(_own_claim_blocks(claim, policy, dashboard.now, timezone))
    extra = state.own_claims[_HOME_CLAIMS_WITH_BUTTONS:]
    if extra:
        top.append(context(f"…and {len(extra)} more: " + ", ".join(f"GPU {c.gpu_index}" for c in extra)))
    top.append({"type": "actions", "elements": [button("Claim GPUs…", actions.CLAIM_FORM, "open", style="primary")]})
    top.append({"type": "divider"})
    top.append(header(f"All GPUs · {dashboard.free_count} of {len(dashboard.rows)} free{_free_caveats(dashboard)}"))
    footer = context(
        f"Updated {date_token(dashboard.now, timezone)} · 📈 utilization over the last hour · " + figures.load_legend()
    )
    budget = MAX_VIEW_BLOCKS - len(top) - 1
    rows = dashboard.rows
    if len(rows) <= budget:
        gpu_blocks = [_home_gpu_block(row, dashboard.now, timezone, thresholds, trends) for row in rows]
    else:
        lines = [_status_line(row, dashboard.now, timezone, compact=True) for row in rows]
        gpu_blocks = pack_lines(lines, budget, noun="GPUs")
    if not rows:
        gpu_blocks = [section("No GPUs found on this host.")]
    return {"type": "home", "blocks": [*top, *gpu_blocks, footer]}


def claim_modal(dashboard: Dashboard, policy: ClaimPolicy, preselect: int | None) -> Block:
    """The claim form: free GPUs (the clicked one preselected; those in use say by whom), a purpose, a duration.

    A GPU that is not responding cannot be claimed, so it is not offered; a line under the choice says so.
    """
    unclaimed = [row for row in dashboard.rows if row.claim is None]
    free = [row for row in unclaimed if not row.use.not_responding][:MAX_SELECT_OPTIONS]
    silent = [row.gpu.index for row in unclaimed if row.use.not_responding]
    base: Block = {
        "type": "modal",
        "callback_id": actions.CLAIM_MODAL_CALLBACK,
        "title": plain("Claim GPUs"),
        "close": plain("Cancel"),
    }
    if not free:
        nothing = "Every GPU is claimed right now; `/gpu status` shows when they end."
        if silent:
            nothing = f"No GPU can be claimed right now: {_not_responding_list(silent)}. {nothing}"
        return {**base, "blocks": [section(nothing)]}
    options = {row.gpu.index: option(_gpu_option_text(row), str(row.gpu.index)) for row in free}
    gpu_select: Block = {
        "type": "multi_static_select",
        "action_id": actions.GPUS_INPUT,
        "placeholder": plain("Pick one or more"),
        "options": list(options.values()),
    }
    if preselect in options:
        gpu_select["initial_options"] = [options[preselect]]
    durations = [option(format_duration(d), str(int(d.total_seconds()))) for d in policy.offered_durations()]
    default = str(int(policy.default_duration.total_seconds()))
    notes = [context(f"⚠️ {_not_responding_list(silent)}, so it cannot be claimed.")] if silent else []
    return {
        **base,
        "submit": plain("Claim"),
        "blocks": [
            _input(actions.GPUS_INPUT, "GPUs", gpu_select),
            *notes,
            _input(
                actions.PURPOSE_INPUT,
                "Purpose",
                {
                    "type": "plain_text_input",
                    "action_id": actions.PURPOSE_INPUT,
                    "max_length": PURPOSE_MAX_CHARS,
                    "placeholder": plain("e.g. fine-tune llama"),
                },
            ),
            _input(
                actions.DURATION_INPUT,
                "For how long",
                {
                    "type": "static_select",
                    "action_id": actions.DURATION_INPUT,
                    "options": durations,
                    "initial_option": next(o for o in durations if o["value"] == default),
                },
            ),
        ],
    }


def claim_modal_errors(error: GpubotError, names: Mapping[str, str]) -> dict[str, str]:
    """A refused claim as field errors of the claim form (`response_action: errors`).

    Field errors are plain text, where a mention shows as its raw `<@U…>`: each person the message mentions
    is named instead (`names` by user ID), or shown as @U… while their name is unknown.
    """
    field = actions.GPUS_INPUT
    if isinstance(error, InvalidPurpose):
        field = actions.PURPOSE_INPUT
    elif isinstance(error, DurationOutOfBounds):
        field = actions.DURATION_INPUT
    # Field errors are plain text, where mentions do not render: name the holder, and escape what is left,
    # which may echo what the person typed.
    text = error.message
    for user_id in error.mentions:
        text = text.replace(mention(user_id), names.get(user_id) or f"@{user_id}")
    return {field: truncate(escape(text), 150)}


def claim_modal_internal_error() -> dict[str, str]:
    """The claim form's answer when gpubot itself failed: nothing was claimed, and the details are in the log."""
    return {actions.GPUS_INPUT: "Something went wrong on gpubot's side; nothing was claimed. Try again in a moment."}


def doctor_home_view() -> Block:
    """The Home view `gpubot doctor` publishes to prove the tab works; the daemon replaces it on the next open."""
    return {
        "type": "home",
        "blocks": [
            section("🩺 `gpubot doctor` checked that gpubot can show this tab. Open the tab again to see the GPUs.")
        ],
    }


def doctor_dm_message() -> Message:
    """The DM `gpubot doctor` sends along the path expiry warnings take."""
    text = "🩺 `gpubot doctor`: DMs from gpubot (expiry warnings, releases) arrive here. Nothing to do."
    return Message(text=text, blocks=[section(text)])


def sparkline(values: Sequence[float | None]) -> str:
    """Percentages as unicode bars; a gap where nothing was measured."""
    return "".join(
        "·" if value is None else _SPARK[min(int(value / 100 * len(_SPARK)), len(_SPARK) - 1)] for value in values
    )


def button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    element: Block = {"type": "button", "text": plain(text), "action_id": action_id, "value": value}
    if style:
        element["style"] = style
    return element


def option(text: str, value: str) -> Block:
    return {"text": plain(text), "value": value}


def plain(text: str) -> Block:
    return {"type": "plain_text", "text": truncate(text, MAX_PLAIN_TEXT_CHARS), "emoji": True}


def pack_lines(lines: Sequence[str], max_blocks: int, noun: str) -> list[Block]:
    """One section per line while they fit; otherwise several lines per section, then "and N more"."""
    if len(lines) <= max_blocks:
        return [section(line) for line in lines]
    blocks: list[Block] = []
    chunk: list[str] = []
    # The length of "\n".join(chunk), kept as lines are added: joining the chunk anew for every line made
    # this quadratic in the lines per section (issue 5).
    chunk_chars = 0
    shown = 0
    for line in lines:
        if chunk and chunk_chars + 1 + len(line) > MAX_SECTION_CHARS:
            if len(blocks) == max_blocks - 1:
                break
            blocks.append(section("\n".join(chunk)))
            chunk, chunk_chars = [], 0
        chunk_chars += len(line) + (1 if chunk else 0)
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


def _free_caveats(dashboard: Dashboard) -> str:
    """What the count of free GPUs must not hide: e.g. " (1 in use without a claim, 1 not responding)"."""
    caveats = []
    if dashboard.free_in_use_count:
        caveats.append(f"{dashboard.free_in_use_count} in use without a claim")
    if dashboard.free_not_responding_count:
        caveats.append(f"{dashboard.free_not_responding_count} not responding")
    return f" ({', '.join(caveats)})" if caveats else ""


def _free_state(row: GpuRow) -> tuple[str, str]:
    """An unclaimed GPU's badge and state, e.g. ("🟡", "*free, but in use* by alice's process …")."""
    if row.use.not_responding:
        return "⚠️", "*not responding*"
    if row.use.in_use:
        return "🟡", f"*free, but in use* by {escape(row.use.description())}"
    return "🟢", "*free*"


def _gpu_option_text(row: GpuRow) -> str:
    text = f"GPU {row.gpu.index} · {row.gpu.name or 'unknown model'}"
    if row.use.in_use:
        text += f" · in use by {row.use.description()}"
    return text


def _not_responding_list(indices: Sequence[int]) -> str:
    if len(indices) == 1:
        return f"GPU {indices[0]} is not responding"
    return f"GPUs {', '.join(str(index) for index in indices)} are not responding"


def _status_line(row: GpuRow, now: datetime, timezone: ZoneInfo, compact: bool) -> str:
    gpu, claim = row.gpu, row.claim
    model = escape(gpu.name or "unknown model")
    lost = " · ⚠️ not responding" if row.use.not_responding else ""
    if claim is None:
        badge, state = _free_state(row)
        return f"{badge} *{gpu.index}* {state}" if compact else f"{badge} *GPU {gpu.index}* · {model} — {state}"
    if compact:
        purpose = escape(truncate(claim.purpose, _COMPACT_PURPOSE_CHARS))
        return (
            f"🔴 *{gpu.index}* {mention(claim.user_id)} until {date_token(claim.ends_at, timezone)} · {purpose}{lost}"
        )
    return (
        f"🔴 *GPU {gpu.index}* · {model} — {mention(claim.user_id)} until"
        f" {date_token(claim.ends_at, timezone)} ({format_duration(claim.time_left(now))} left){lost}\n"
        f"for: {escape(claim.purpose)}"
    )


def _realtime_line(row: GpuRow, thresholds: LoadThresholds, compact: bool) -> str:
    gpu, sample = row.gpu, row.sample
    holder = f" · held by {mention(row.claim.user_id)}" if row.claim else " · " + _free_state(row)[1]
    if sample is None:
        return f"❔ *GPU {gpu.index}* · no telemetry for this GPU{holder}"
    level = load_level(sample, thresholds)
    badge = LOAD_BADGES[level]
    if compact:
        return (
            f"{badge} *{gpu.index}* {figures.percent(sample.utilization_gpu_pct)} · {figures.temperature(sample)} · "
            f"{figures.memory(sample)} · {len(sample.processes)} procs{holder}"
        )
    model = escape(sample.name or gpu.name or "unknown model")
    lines = [
        f"{badge} *GPU {gpu.index}* · {model} · *{level.value}*{holder}",
        f"🌡 {figures.temperature(sample)} · util {figures.percent(sample.utilization_gpu_pct)}"
        f" · mem {figures.memory(sample)} · power {figures.power(sample)}",
    ]
    lines.extend(_process_lines(sample.processes))
    return "\n".join(lines)


def _process_lines(processes: Sequence[ProcessSample]) -> list[str]:
    if not processes:
        return ["no processes"]
    return figures.process_lines(
        processes,
        lambda p: f"`{p.pid}` {escape(p.name or 'n/a')} · {escape(p.user or 'n/a')} · {figures.mib(p.used_memory_mib)}",
    )


def _gpu_list(claims: Sequence[Claim]) -> str:
    noun = "GPU" if len(claims) == 1 else "GPUs"
    return f"{noun} " + ", ".join(str(claim.gpu_index) for claim in claims)


def _own_claim_blocks(claim: Claim, policy: ClaimPolicy, now: datetime, timezone: ZoneInfo) -> list[Block]:
    text = (
        f"*GPU {claim.gpu_index}* · {escape(claim.purpose)}\n"
        f"ends {date_token(claim.ends_at, timezone)} · {format_duration(claim.time_left(now))} left"
    )
    elements = [button("Release", actions.release_action_id(claim.id), str(claim.id), style="danger")]
    elements.extend(
        button(
            f"+{format_duration(extra)}",
            actions.extend_action_id(claim.id, extra),
            actions.extend_value(claim.id, extra, claim.ends_at),
        )
        for extra in _QUICK_EXTENSIONS
    )
    elements.append(
        {
            "type": "static_select",
            "action_id": actions.extend_action_id(claim.id, None),
            "placeholder": plain("Extend by…"),
            "options": [
                option(f"+{format_duration(d)}", actions.extend_value(claim.id, d, claim.ends_at))
                for d in policy.offered_durations()
            ],
        }
    )
    return [section(text), {"type": "actions", "elements": elements}]


def _home_gpu_block(
    row: GpuRow,
    now: datetime,
    timezone: ZoneInfo,
    thresholds: LoadThresholds,
    trends: Mapping[str, Sequence[float | None]],
) -> Block:
    block = section(_status_line(row, now, timezone, compact=False))
    sample = row.sample
    if sample is not None:
        badge = LOAD_BADGES[load_level(sample, thresholds)]
        trend = sparkline(trends.get(row.gpu.uuid, ()))
        block["fields"] = [
            {"type": "mrkdwn", "text": f"{badge} util {figures.percent(sample.utilization_gpu_pct)} {trend}".strip()},
            {
                "type": "mrkdwn",
                "text": f"mem {figures.percent(sample.memory_used_pct)} · {figures.temperature(sample)}",
            },
        ]
    if row.claim is None and not row.use.not_responding:
        block["accessory"] = button("Claim", actions.claim_gpu_action_id(row.gpu.index), str(row.gpu.index))
    return block


def _input(block_id: str, label: str, element: Block) -> Block:
    return {"type": "input", "block_id": block_id, "label": plain(label), "element": element}


def _actor(actor_id: str | None) -> str:
    if actor_id is None:
        return "an admin"
    if actor_id.startswith("host:"):
        # The host CLI's `gpubot release --force`: a Unix user on the GPU host, not a Slack user.
        return f"`{escape(actor_id.removeprefix('host:'))}` on the GPU host"
    return mention(actor_id)
