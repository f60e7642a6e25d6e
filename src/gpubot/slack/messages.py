"""Slack messages: pure functions from gpubot state to replies and DMs. No I/O, no Slack client.

Every builder keeps within Block Kit's limits however much state there is: with many GPUs the
listing compacts (several GPUs to a section, then "and N more") rather than overflowing. Whatever a
person typed is escaped; errors become text here, with mentions and `/gpu …` hints, from their fields.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from gpubot.core import figures
from gpubot.core.dashboard import Dashboard, GpuRow
from gpubot.core.durations import ACCEPTED_FORMS, format_duration
from gpubot.core.errors import (
    AlreadyHeld,
    AlreadyYours,
    GpubotError,
    GpuNotResponding,
    GpuUnreadable,
    NoFreeGpu,
    NotHolder,
)
from gpubot.core.figures import LOAD_BADGES
from gpubot.core.fleet import address
from gpubot.core.load import LoadThresholds, load_level
from gpubot.core.mig import CudaDevices
from gpubot.core.models import Claim, ClaimUsage, HostSample, NoticeKind, OutboxItem, ProcessSample
from gpubot.core.policy import ClaimPolicy
from gpubot.core.service import ClaimOutcome, ExtendOutcome, ReleaseOutcome
from gpubot.core.usage import receipt
from gpubot.slack import actions
from gpubot.slack.blocks import MAX_MESSAGE_BLOCKS, Message, button, context, header, pack_lines, section
from gpubot.slack.mrkdwn import date_token, escape, mention, truncate

# Room left in a message for the header, summary and footer around the per-GPU blocks.
_FRAME_BLOCKS = 4
# A release of many GPUs packs their receipts into a few sections.
_RECEIPT_BLOCKS = 3
_COMPACT_PURPOSE_CHARS = 40
# The one-click extensions an expiry warning and the Home tab offer.
QUICK_EXTENSIONS = (timedelta(hours=1), timedelta(hours=2))


@dataclass(frozen=True)
class Usage:
    """One subcommand's syntax, what it does, and an example."""

    syntax: str
    summary: str
    example: str


# How each of `core.commands.SUBCOMMANDS` is typed in Slack.
USAGES: dict[str, Usage] = {
    "status": Usage(
        "/gpu status [host]",
        "every GPU, who holds it, for what and until when; in a fleet, a line per host, or one host in full",
        "/gpu",
    ),
    "claim": Usage(
        "/gpu claim <gpu> <purpose> [duration]",
        "claim GPUs: one index, a MIG slice `0.2`, a list `0,2` or `1,0.2`, a range of cards `0-3`, or `any`"
        " (an idle whole card first, else an idle MIG slice); with several hosts, `host:` first (`box-2:0,2`);"
        " `any` looks on every host, `2xany` takes two on one host; with nothing after it, a form opens",
        "/gpu claim 0,2 fine-tune llama 3h",
    ),
    "release": Usage("/gpu release <gpu>|all", "release your claims", "/gpu release 0"),
    "extend": Usage("/gpu extend <gpu> <duration>", "push your claim's end later", "/gpu extend 0 1h"),
    "realtime": Usage("/gpu realtime [host]", "live load, temperature, memory, power and processes", "/gpu realtime"),
    "usage": Usage(
        "/gpu usage [me|@someone|team|host|model] [7d|30d|90d]",
        "GPU-hours held and busy, idle while held, top purposes and the busiest hours",
        "/gpu usage team 30d",
    ),
    "help": Usage("/gpu help", "this list", "/gpu help"),
}


def status_message(dashboard: Dashboard, policy: ClaimPolicy, timezone: ZoneInfo) -> Message:
    """The allocation dashboard: every GPU, free or held, by whom, for what and until when."""
    total = len(dashboard.rows)
    free = dashboard.free_count
    summary = f"*{free} of {total} GPUs free*{free_caveats(dashboard)}" if total else "*No GPUs found on this host.*"
    if not dashboard.online:
        summary = f"⚫ {offline_note(dashboard, timezone)}\n{summary}"
    compact = total > MAX_MESSAGE_BLOCKS - _FRAME_BLOCKS
    lines = [status_line(row, dashboard.now, timezone, compact) for row in dashboard.rows]
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
    if not dashboard.online:
        text = f"⚫ Host {escape(dashboard.host)} is offline: it has not reported lately, so there are no live figures."
        return Message(text=f"{dashboard.host} is offline", blocks=[section(text)])
    if sample is None:
        return Message(
            text="No telemetry yet",
            blocks=[section("⏳ No telemetry has been read yet; try again in a few seconds.")],
        )
    compact = len(dashboard.rows) > MAX_MESSAGE_BLOCKS - _FRAME_BLOCKS
    lines = [realtime_line(row, thresholds, compact) for row in dashboard.rows]
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
    labels = ",".join(claim.label for claim in claims)
    first = claims[0]
    noun = "GPU" if len(claims) == 1 else "GPUs"
    devices = outcome.cuda_devices
    # PCI_BUS_ID makes CUDA number GPUs as nvidia-smi and NVML do; its default order can differ. UUIDs need no order.
    order = "" if devices.by_uuid else "CUDA_DEVICE_ORDER=PCI_BUS_ID "
    # In a fleet the line works on that host only, so the reply says which.
    on_host = f" on *{escape(first.host)}*" if outcome.several_hosts else ""
    use = f"On {escape(first.host)}, use" if outcome.several_hosts else "Use"
    text = (
        f"✅ You have *{noun} {labels}*{on_host} until {date_token(first.ends_at, timezone)}"
        f" ({format_duration(first.ends_at - now)}).\n"
        f"for: {escape(first.purpose)}\n"
        f"{use} {'it' if len(claims) == 1 else 'them'} with `{order}CUDA_VISIBLE_DEVICES={escape(devices.value)}`"
    )
    if devices.whole_mig_cards:
        text += (
            f"\nGPU {', '.join(devices.whole_mig_cards)} is in MIG mode: that lists all its slices, and a CUDA"
            " process uses one MIG device, so run one process per slice."
        )
    result = [section(text)]
    if outcome.warnings:
        result.append(section("\n".join(f"⚠️ {escape(warning)}" for warning in outcome.warnings)))
    return Message(text=f"You have {noun} {labels}{on_host.replace('*', '')}", blocks=result)


def release_message(outcome: ReleaseOutcome) -> Message:
    """The reply to a release, naming whose claims an admin ended."""
    lines = []
    several = outcome.several_hosts
    if outcome.released:
        lines.append(f"✅ Released {_gpu_list(outcome.released, several)}.")
    for claim in outcome.forced:
        lines.append(
            f"✅ Released GPU {gpu_name(claim, several)}, held by {mention(claim.user_id)}; they have been told."
        )
    if not lines:
        lines.append("Nothing to release: those claims had already ended.")
    blocks = [section("\n".join(lines))]
    ended = outcome.released + outcome.forced
    receipts = [
        _receipt_line(claim, outcome.usage.get(claim.id), several if len(ended) > 1 else None) for claim in ended
    ]
    blocks += pack_lines(receipts, _RECEIPT_BLOCKS, "receipts")
    return Message(text="Released", blocks=blocks)


def _receipt_line(claim: Claim, usage: ClaimUsage | None, several: bool | None) -> str:
    """A claim's receipt as a context line; `several` not None names its GPU (several ended at once)."""
    made = receipt((claim.ended_at or claim.ends_at) - claim.started_at, usage)
    line = f"🧾 {made.line}"
    if several is not None:
        line = f"🧾 GPU {gpu_name(claim, several)}: {made.line}"
    if made.mostly_idle:
        line += "\n💡 It was mostly idle: release GPUs when your job ends, so others can use them."
    return line


def extend_message(outcome: ExtendOutcome, policy: ClaimPolicy, now: datetime, timezone: ZoneInfo) -> Message:
    """The reply to an extension, saying when the maximum cut it short."""
    lines = [
        f"✅ GPU {gpu_name(claim, outcome.several_hosts)} now ends {date_token(claim.ends_at, timezone)}"
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


def error_text(error: GpubotError, person: Callable[[str], str] = mention) -> str:
    """What went wrong, as mrkdwn.

    The message escaped (it may echo what was typed), the people it is about written by `person` (a mention
    by default), and the hints a Slack user can follow.
    """
    if isinstance(error, AlreadyHeld) and error.held_label != error.gpu_label:
        return f"GPU {error.gpu_label} is taken: GPU {error.held_label} is claimed by {person(error.holder_id)}."
    if isinstance(error, AlreadyHeld):
        return f"GPU {error.gpu_label} is already claimed by {person(error.holder_id)}."
    if isinstance(error, NotHolder):
        return f"GPU {error.gpu_label} is claimed by {person(error.holder_id)}, not by you."
    if isinstance(error, AlreadyYours):
        extend = escape(f"/gpu extend {error.gpu_label} <duration>")
        return f"You already hold GPU {error.gpu_label}; use `{extend}` for more time."
    if isinstance(error, NoFreeGpu) and not error.not_responding:
        return "Every GPU is claimed right now; see `/gpu status` for when they end."
    if isinstance(error, NoFreeGpu):
        return f"{escape(error.message)} See `/gpu status` for when the others end."
    if isinstance(error, (GpuNotResponding, GpuUnreadable)):
        return f"{escape(error.message)} `/gpu status` shows the GPUs that can."
    return escape(error.message)


def error_message(error: GpubotError) -> Message:
    """What went wrong and, where it helps, the right syntax. User text in the message is escaped."""
    text = error_text(error)
    blocks = [section("⚠️ " + text)]
    if error.usage:
        syntax = "\n".join(USAGES[name].syntax for name in error.usage)
        blocks.append(section(f"```{escape(syntax)}```"))
    # The fallback text is mrkdwn too (notifications, screen readers): escaped like the blocks.
    return Message(text=text if not error.people else "That did not work", blocks=blocks)


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


def notice_message(
    item: OutboxItem,
    timezone: ZoneInfo,
    now: datetime,
    devices: CudaDevices | None = None,
    several_hosts: bool = False,
) -> Message:
    """The DM a holder is owed.

    A claim's confirmation (with `devices`, its CUDA_VISIBLE_DEVICES value; None: from the claim alone), an
    expiry warning (with buttons), an expiry, or an admin's release. With `several_hosts`, it names the GPU's host.
    """
    claim = item.claim
    if item.notice.kind is NoticeKind.CLAIMED:
        return claim_message(ClaimOutcome((claim,), devices=devices, several_hosts=several_hosts), now, timezone)
    label = gpu_name(claim, several_hosts)
    gpu = f"*GPU {label}* ({escape(claim.purpose)})"
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
            for extra in QUICK_EXTENSIONS
        ]
        buttons.append(button("Release now", actions.release_action_id(claim.id), str(claim.id), style="danger"))
        return Message(
            text=f"Your claim on GPU {label} ends soon",
            blocks=[section(text), {"type": "actions", "elements": buttons}],
        )
    if item.notice.kind is NoticeKind.EXPIRED:
        text = (
            f"⌛ Your claim on {gpu} ended {date_token(claim.ends_at, timezone)}; the GPU is free again."
            " Claim it again with `/gpu claim` if you still need it."
        )
        return Message(
            text=f"Your claim on GPU {label} expired",
            blocks=[section(text), *pack_lines([_receipt_line(claim, item.usage, None)], 1, "receipts")],
        )
    text = (
        f"Your claim on {gpu} was released by {_actor(item.notice.actor_id)}"
        f" at {date_token(claim.ended_at or claim.ends_at, timezone)}."
    )
    return Message(
        text=f"Your claim on GPU {label} was released",
        blocks=[section(text), *pack_lines([_receipt_line(claim, item.usage, None)], 1, "receipts")],
    )


def doctor_dm_message() -> Message:
    """The DM `gpubot doctor` sends along the path expiry warnings take."""
    text = "🩺 `gpubot doctor`: DMs from gpubot (expiry warnings, releases) arrive here. Nothing to do."
    return Message(text=text, blocks=[section(text)])


def free_caveats(dashboard: Dashboard) -> str:
    """What the count of free GPUs must not hide: e.g. " (1 in use without a claim, 1 not responding)"."""
    caveats = []
    if dashboard.free_in_use_count:
        caveats.append(f"{dashboard.free_in_use_count} in use without a claim")
    if dashboard.free_not_responding_count:
        caveats.append(f"{dashboard.free_not_responding_count} not responding")
    if dashboard.free_unreadable_count:
        caveats.append(f"{dashboard.free_unreadable_count} unreadable")
    return f" ({', '.join(caveats)})" if caveats else ""


def _free_state(row: GpuRow) -> tuple[str, str]:
    """An unclaimed GPU's badge and state, e.g. ("🟡", "*free, but in use* by alice's process …")."""
    covered = figures.covered_state(row, mention)
    if covered is not None:
        return "🔴", covered
    badge = "⚠️" if row.use.unclaimable else "🟡" if row.use.in_use or row.use.reason else "🟢"
    return badge, figures.free_state(row.use, escape, _bold)


# Set before a MIG slice's line, which follows its card's.
_UNDER_CARD = "    ↳ "


def _bold(text: str) -> str:
    return f"*{text}*"


def status_line(row: GpuRow, now: datetime, timezone: ZoneInfo, compact: bool) -> str:
    """One GPU of `/gpu status` and the Home tab: free (and how), or who holds it, until when and for what.

    `compact` is the one-line form used when many GPUs must fit in Slack's block limit.
    """
    gpu, claim = row.gpu, row.claim
    model = escape(figures.model(gpu))
    lost = " · ⚠️ not responding" if row.use.not_responding else ""
    under = _UNDER_CARD if gpu.is_slice else ""
    if claim is None:
        badge, state = _free_state(row)
        if compact:
            return f"{under}{badge} *{gpu.label}* {state}"
        return f"{under}{badge} *GPU {gpu.label}* · {model} — {state}"
    if compact:
        purpose = escape(truncate(claim.purpose, _COMPACT_PURPOSE_CHARS))
        return (
            f"{under}🔴 *{gpu.label}* {mention(claim.user_id)} until {date_token(claim.ends_at, timezone)}"
            f" · {purpose}{lost}"
        )
    return (
        f"{under}🔴 *GPU {gpu.label}* · {model} — {mention(claim.user_id)} until"
        f" {date_token(claim.ends_at, timezone)} ({format_duration(claim.time_left(now))} left){lost}\n"
        f"for: {escape(claim.purpose)}"
    )


def realtime_line(row: GpuRow, thresholds: LoadThresholds, compact: bool, label: str | None = None) -> str:
    """One GPU of `/gpu realtime`; `compact` in a line. `label` names it (default its label; `box-2:3` in a fleet)."""
    gpu, sample = row.gpu, row.sample
    label = escape(label) if label is not None else gpu.label
    holder = f" · held by {mention(row.claim.user_id)}" if row.claim else " · " + _free_state(row)[1]
    under = _UNDER_CARD if gpu.is_slice else ""
    if sample is None:
        return f"{under}❔ *GPU {label}* · no telemetry for this GPU{holder}"
    level = load_level(sample, thresholds)
    badge = LOAD_BADGES[level]
    if sample.unreadable is not None:
        return f"{under}{badge} *GPU {label}* · unreadable ({escape(sample.unreadable)}){holder}"
    procs = "n/a" if sample.processes_unknown is not None else str(len(sample.processes))
    if compact:
        return (
            f"{under}{badge} *{label}* {figures.percent(sample.utilization_gpu_pct)} · "
            f"{figures.temperature(sample)} · {figures.memory(sample)} · {procs} procs{holder}"
        )
    model = escape(figures.model(gpu) if gpu.is_slice else sample.name or gpu.name or "unknown model")
    lines = [
        f"{under}{badge} *GPU {gpu.label}* · {model} · *{level.value}*{holder}",
        f"🌡 {figures.temperature(sample)} · util {figures.percent(sample.utilization_gpu_pct)}"
        f" · mem {figures.memory(sample)} · power {figures.power(sample)}",
    ]
    unknown = figures.processes_unknown(sample)
    lines.extend([escape(unknown)] if unknown is not None else _process_lines(sample.processes))
    return "\n".join(lines)


def _process_lines(processes: Sequence[ProcessSample]) -> list[str]:
    if not processes:
        return ["no processes"]
    return figures.process_lines(
        processes,
        lambda p: f"`{p.pid}` {escape(p.name or 'n/a')} · {escape(p.user or 'n/a')} · {figures.mib(p.used_memory_mib)}",
    )


def _gpu_list(claims: Sequence[Claim], several: bool) -> str:
    noun = "GPU" if len(claims) == 1 else "GPUs"
    return f"{noun} " + ", ".join(gpu_name(claim, several) for claim in claims)


def gpu_name(claim: Claim, several: bool) -> str:
    """The GPU a claim holds as people name it: `3`, or `box-2:3` in a fleet of several hosts."""
    return escape(address(claim.label, claim.host, several))


def offline_note(dashboard: Dashboard, timezone: ZoneInfo) -> str:
    """Why a host's GPUs cannot be claimed: "*Offline*: last report <date>; its GPUs cannot be newly claimed."."""
    seen = (
        "it never reported"
        if dashboard.last_seen_at is None
        else f"last report {date_token(dashboard.last_seen_at, timezone)}"
    )
    return f"*Offline*: {seen}; its GPUs cannot be newly claimed."


def _actor(actor_id: str | None) -> str:
    if actor_id is None:
        return "an admin"
    if actor_id.startswith("host:"):
        # The host CLI's `gpubot release --force`: a Unix user on the GPU host, not a Slack user.
        return f"`{escape(actor_id.removeprefix('host:'))}` on the GPU host"
    return mention(actor_id)
