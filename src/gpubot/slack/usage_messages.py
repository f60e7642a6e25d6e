"""`/gpu usage`'s reply: a usage report as Block Kit. Pure: from the report to blocks, tested without Slack."""

from __future__ import annotations

from gpubot.core.usage_report import UsageReport, UsageTotals
from gpubot.slack.blocks import Block, Message, context, header, pack_lines, section
from gpubot.slack.mrkdwn import escape, mention, truncate

# People get a section each up to this many; a bigger team is packed several to a section.
_PEOPLE_BLOCKS = 5
_PURPOSE_CHARS = 60


def gpu_hours(seconds: float) -> str:
    """GPU-time as people compare it: "12.5 GPU-h", "0.3 GPU-h", "0 GPU-h"."""
    hours = seconds / 3600
    if hours == 0:
        return "0 GPU-h"
    return f"{hours:.1f} GPU-h" if hours < 100 else f"{hours:,.0f} GPU-h"


def totals_line(totals: UsageTotals) -> str:
    """Held, busy (with its share of the observed time), idle while held, and what telemetry did not see."""
    parts = [f"held {gpu_hours(totals.held_s)}"]
    share = totals.busy_share
    parts.append(f"busy {gpu_hours(totals.busy_s)}" + (f" ({share:.0%})" if share is not None else ""))
    parts.append(f"idle while held {gpu_hours(totals.idle_s)}")
    unseen = totals.held_s - totals.observed_s
    if unseen >= 60:
        parts.append(f"not observed {gpu_hours(unseen)}")
    return " · ".join(parts)


def usage_message(report: UsageReport, team_view: bool) -> Message:
    """The reply to `/gpu usage`: totals, then (for a team, host or model) each person, the purposes, the hours."""
    title = f"GPU usage: {report.title}, last {report.days} days"
    if report.totals.claims == 0:
        return Message(
            text=title,
            blocks=[header(title), section("No claims in this period.")],
        )
    blocks = [header(title), *report_blocks(report, with_people=team_view)]
    blocks.append(context("Busy: utilization at the active threshold or any process on the GPU."))
    return Message(text=f"{title}: {totals_line(report.totals)}", blocks=blocks)


def report_blocks(report: UsageReport, with_people: bool) -> list[Block]:
    """A report's body, for `/gpu usage` and the weekly digest: totals, each person's, top purposes, busiest hours."""
    claims = f"{report.totals.claims} claim{'' if report.totals.claims == 1 else 's'}"
    blocks = [section(f"*{claims}* — {totals_line(report.totals)}")]
    if with_people and report.people:
        people = [f"{mention(person.user_id)}: {totals_line(person.totals)}" for person in report.people]
        blocks += pack_lines(people, _PEOPLE_BLOCKS, "people")
    if report.purposes:
        purposes = ", ".join(
            f"{escape(truncate(purpose.purpose, _PURPOSE_CHARS))} ({gpu_hours(purpose.held_s)})"
            for purpose in report.purposes
        )
        blocks.append(section(f"*Top purposes:* {purposes}"))
    if report.busiest:
        hours = ", ".join(f"{hour.label} ({hour.utilization_pct:.0f} %)" for hour in report.busiest)
        blocks.append(context(f"Busiest hours of the week (average GPU utilization): {hours}"))
    return blocks
