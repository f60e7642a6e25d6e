"""Slack messages for a fleet of several hosts: a line per host, what is held, and one host in full on request.

Pure, like `slack.messages`, whose one-host messages they fall back to while the fleet has one host (so it
looks exactly as before). Within Block Kit's limits at any size: 32 hosts of 8 GPUs fit, larger fleets compact.
"""

from __future__ import annotations

import functools
from zoneinfo import ZoneInfo

from gpubot.core import figures
from gpubot.core.dashboard import Dashboard, Fleet
from gpubot.core.durations import format_duration
from gpubot.core.load import LoadThresholds
from gpubot.core.models import Claim
from gpubot.core.policy import ClaimPolicy
from gpubot.slack import messages
from gpubot.slack.blocks import MAX_MESSAGE_BLOCKS, Block, Message, context, header, pack_lines, section
from gpubot.slack.mrkdwn import date_token, escape, mention, truncate

# Blocks a fleet's status gives its host lines at most; the held GPUs get the rest.
_HOST_BLOCKS = 16
_PURPOSE_CHARS = 40


def status_message(fleet: Fleet, host: str | None, policy: ClaimPolicy, timezone: ZoneInfo) -> Message:
    """`/gpu status [HOST]`: one host in full (the one named, or the only one), else every host summarised.

    Raises:
        UnknownHost: `host` is not one of the fleet's.
    """
    if host is not None:
        return messages.status_message(fleet.host(host), policy, timezone)
    if not fleet.several:
        return messages.status_message(fleet.hosts[0], policy, timezone)
    held = [
        held_line(dashboard.host, row.gpu.label, row.claim, timezone)
        for dashboard in fleet.hosts
        for row in dashboard.rows
        if row.claim is not None
    ]
    offline = sum(1 for dashboard in fleet.hosts if not dashboard.online)
    summary = f"*{fleet.free_count} of {fleet.gpu_count} GPUs free* on {len(fleet.hosts)} hosts" + (
        f" ({offline} offline)" if offline else ""
    )
    host_lines = [host_line(dashboard, timezone) for dashboard in fleet.hosts]
    host_blocks = pack_lines(host_lines, _HOST_BLOCKS, noun="hosts")
    frame = 4  # header, summary, the held GPUs' title, footer
    blocks: list[Block] = [header("GPUs in the fleet"), section(summary), *host_blocks]
    blocks.append(section(f"*Held ({len(held)})*" if held else "*Nothing is held.*"))
    blocks.extend(pack_lines(held, MAX_MESSAGE_BLOCKS - frame - len(host_blocks), noun="held GPUs"))
    blocks.append(
        context(
            "`/gpu status HOST` shows a host in full · claim with"
            f" `{escape('/gpu claim HOST:GPU <purpose> [duration]')}`, `/gpu claim any …` or `2xany` for two on one"
            f" host · durations {format_duration(policy.min_duration)} to {format_duration(policy.max_duration)}"
            " · `/gpu help`"
        )
    )
    return Message(text=f"{fleet.free_count} of {fleet.gpu_count} GPUs free on {len(fleet.hosts)} hosts", blocks=blocks)


def realtime_message(fleet: Fleet, host: str | None, thresholds: LoadThresholds, timezone: ZoneInfo) -> Message:
    """`/gpu realtime [HOST]`: one host's live figures in full, else every GPU of the fleet in a line each.

    Raises:
        UnknownHost: `host` is not one of the fleet's.
    """
    if host is not None or not fleet.several:
        dashboard = fleet.host(host) if host is not None else fleet.hosts[0]
        return messages.realtime_message(dashboard, dashboard.sample, thresholds)
    lines: list[str] = []
    for dashboard in fleet.hosts:
        if not dashboard.online or dashboard.sample is None:
            badge = "⚫" if not dashboard.online else "❔"
            lines.append(f"{badge} *{escape(dashboard.host)}* · {offline_words(dashboard, timezone)}")
            continue
        driver = escape(dashboard.sample.driver_version or "n/a")
        lines.append(f"🖥 *{escape(dashboard.host)}* · driver {driver} · {len(dashboard.rows)} GPUs")
        lines.extend(
            messages.realtime_line(row, thresholds, compact=True, label=f"{dashboard.host}:{row.gpu.label}")
            for row in dashboard.rows
        )
    blocks = [
        header("Live GPU load in the fleet"),
        context(figures.load_legend(), "`/gpu realtime HOST` shows a host in full"),
        *pack_lines(lines, MAX_MESSAGE_BLOCKS - 2, noun="lines"),
    ]
    return Message(text="Live GPU load in the fleet", blocks=blocks)


def host_line(dashboard: Dashboard, timezone: ZoneInfo) -> str:
    """One host in a line: e.g. "🟢 *box-2* · 5 of 8 free", or offline with when it last reported."""
    name = escape(dashboard.host)
    total = len(dashboard.rows)
    if not dashboard.online:
        held = sum(1 for row in dashboard.rows if row.claim is not None)
        return f"⚫ *{name}* · {offline_words(dashboard, timezone)} · {total} GPUs, {held} held"
    badge = "🟢" if dashboard.free_count else "🔴"
    return f"{badge} *{name}* · {dashboard.free_count} of {total} free{messages.free_caveats(dashboard)}"


def offline_words(dashboard: Dashboard, timezone: ZoneInfo) -> str:
    """A host's state in words: `*offline*, last report <date>`, or `no telemetry yet` while it has no sample."""
    if dashboard.online:
        return "no telemetry yet"
    if dashboard.last_seen_at is None:
        return "*offline*, never reported"
    return f"*offline*, last report {date_token(dashboard.last_seen_at, timezone)}"


@functools.lru_cache(maxsize=4096)
def held_line(host: str, gpu_label: str, claim: Claim, timezone: ZoneInfo) -> str:
    """A held GPU in a line: "🔴 *box-2:3* @alice until <date> · purpose".

    Remembered: a claim's line never changes (the date token shows each reader their own time), and a fleet's
    status renders every held GPU's line on every command.
    """
    purpose = escape(truncate(claim.purpose, _PURPOSE_CHARS))
    return (
        f"🔴 *{escape(host)}:{gpu_label}* {mention(claim.user_id)} until {date_token(claim.ends_at, timezone)}"
        f" · {purpose}"
    )
