"""Slack views: the App Home tab and the claim form, as pure functions from gpubot state. No I/O.

Each stays within Block Kit's limits (100 blocks to a view, 100 options to a select) however many GPUs
and claims there are.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from gpubot.core import figures
from gpubot.core.dashboard import Dashboard, GpuRow, HomeState
from gpubot.core.durations import format_duration
from gpubot.core.errors import DurationOutOfBounds, GpubotError, InvalidPurpose
from gpubot.core.figures import LOAD_BADGES
from gpubot.core.load import LoadThresholds, load_level
from gpubot.core.models import Claim
from gpubot.core.policy import PURPOSE_MAX_CHARS, ClaimPolicy
from gpubot.slack import actions
from gpubot.slack.blocks import (
    MAX_SELECT_OPTIONS,
    MAX_VIEW_BLOCKS,
    Block,
    Message,
    button,
    context,
    header,
    input_block,
    option,
    pack_lines,
    plain,
    section,
)
from gpubot.slack.messages import QUICK_EXTENSIONS, error_text, free_caveats, status_line
from gpubot.slack.mrkdwn import date_token, escape, truncate

# The Home tab lists at most this many of a person's own claims with buttons; the rest as lines.
_HOME_CLAIMS_WITH_BUTTONS = 10
_SPARK = "▁▂▃▄▅▆▇█"


def home_view(
    state: HomeState,
    policy: ClaimPolicy,
    timezone: ZoneInfo,
    thresholds: LoadThresholds,
    trends: Mapping[str, tuple[float | None, ...]],
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
        top.append(context(f"…and {len(extra)} more: " + ", ".join(f"GPU {c.label}" for c in extra)))
    top.append({"type": "actions", "elements": [button("Claim GPUs…", actions.CLAIM_FORM, "open", style="primary")]})
    top.append({"type": "divider"})
    top.append(header(f"All GPUs · {dashboard.free_count} of {len(dashboard.rows)} free{free_caveats(dashboard)}"))
    footer = context(
        f"Updated {date_token(dashboard.now, timezone)} · 📈 utilization over the last hour · " + figures.load_legend()
    )
    budget = MAX_VIEW_BLOCKS - len(top) - 1
    rows = dashboard.rows
    if len(rows) <= budget:
        gpu_blocks = [_home_gpu_block(row, dashboard.now, timezone, thresholds, trends) for row in rows]
    else:
        lines = [status_line(row, dashboard.now, timezone, compact=True) for row in rows]
        gpu_blocks = pack_lines(lines, budget, noun="GPUs")
    if not rows:
        gpu_blocks = [section("No GPUs found on this host.")]
    return {"type": "home", "blocks": [*top, *gpu_blocks, footer]}


def claim_modal(dashboard: Dashboard, policy: ClaimPolicy, preselect: str | None) -> Block:
    """The claim form: free GPUs (the clicked one preselected; those in use say by whom), a purpose, a duration.

    MIG slices are offered under their card with their profile (`GPU 0.2 · MIG 1g.10gb`); a GPU held through
    its card or slices is not free. A GPU that is not responding or unreadable cannot be claimed, so it is
    not offered; a line under the choice says so.
    """
    unclaimed = [row for row in dashboard.rows if row.free]
    offered = [row for row in unclaimed if not row.use.unclaimable]
    free = offered[:MAX_SELECT_OPTIONS]
    if preselect is not None and all(row.gpu.label != preselect for row in free):
        # The clicked GPU is offered even past the select's limit; it comes after all the others, so last.
        clicked = [row for row in offered if row.gpu.label == preselect]
        free = offered[: MAX_SELECT_OPTIONS - len(clicked)] + clicked
    silent = [row for row in unclaimed if row.use.unclaimable]
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
    options = {row.gpu.label: option(_gpu_option_text(row), str(row.gpu.label)) for row in free}
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
            input_block(actions.GPUS_INPUT, "GPUs", gpu_select),
            *notes,
            input_block(
                actions.PURPOSE_INPUT,
                "Purpose",
                {
                    "type": "plain_text_input",
                    "action_id": actions.PURPOSE_INPUT,
                    "max_length": PURPOSE_MAX_CHARS,
                    "placeholder": plain("e.g. fine-tune llama"),
                },
            ),
            input_block(
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

    Field errors are plain text, where a mention would show as its raw `<@U…>`: the people the error is about
    are named instead (`names` by user ID), or shown as @U… while their name is unknown.
    """
    field = actions.GPUS_INPUT
    if isinstance(error, InvalidPurpose):
        field = actions.PURPOSE_INPUT
    elif isinstance(error, DurationOutOfBounds):
        field = actions.DURATION_INPUT
    text = error_text(error, lambda user_id: escape(names.get(user_id) or f"@{user_id}"))
    return {field: truncate(text, 150)}


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


# A trend changes at most once per sample, and every Home publish draws every GPU's: drawn once, kept.
@functools.lru_cache(maxsize=4096)
def sparkline(values: tuple[float | None, ...]) -> str:
    """Percentages as unicode bars; a gap where nothing was measured."""
    return "".join(
        "·" if value is None else _SPARK[min(int(value / 100 * len(_SPARK)), len(_SPARK) - 1)] for value in values
    )


def _gpu_option_text(row: GpuRow) -> str:
    text = f"GPU {row.gpu.label} · {figures.model(row.gpu)}"
    if row.use.in_use:
        text += f" · in use by {row.use.description()}"
    elif row.use.reason is not None:
        text += f" · processes n/a ({row.use.reason})"
    return text


def _not_responding_list(rows: Sequence[GpuRow]) -> str:
    parts = []
    for rows_of, word in (
        ([row for row in rows if row.use.not_responding], "not responding"),
        ([row for row in rows if not row.use.not_responding], "unreadable"),
    ):
        if rows_of:
            labels = ", ".join(row.gpu.label for row in rows_of)
            parts.append(f"GPU {labels} is {word}" if len(rows_of) == 1 else f"GPUs {labels} are {word}")
    return "; ".join(parts)


def _own_claim_blocks(claim: Claim, policy: ClaimPolicy, now: datetime, timezone: ZoneInfo) -> list[Block]:
    text = (
        f"*GPU {claim.label}* · {escape(claim.purpose)}\n"
        f"ends {date_token(claim.ends_at, timezone)} · {format_duration(claim.time_left(now))} left"
    )
    elements = [button("Release", actions.release_action_id(claim.id), str(claim.id), style="danger")]
    elements.extend(
        button(
            f"+{format_duration(extra)}",
            actions.extend_action_id(claim.id, extra),
            actions.extend_value(claim.id, extra, claim.ends_at),
        )
        for extra in QUICK_EXTENSIONS
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
    trends: Mapping[str, tuple[float | None, ...]],
) -> Block:
    block = section(status_line(row, now, timezone, compact=False))
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
    if row.free and not row.use.unclaimable:
        block["accessory"] = button("Claim", actions.claim_gpu_action_id(row.gpu.label), str(row.gpu.label))
    return block
