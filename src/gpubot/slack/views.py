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
from gpubot.core.dashboard import Dashboard, Fleet, FleetHome, GpuRow, HomeState
from gpubot.core.durations import format_duration
from gpubot.core.errors import DurationOutOfBounds, GpubotError, InvalidPurpose
from gpubot.core.figures import LOAD_BADGES
from gpubot.core.fleet import address
from gpubot.core.load import LoadThresholds, load_level
from gpubot.core.models import Claim
from gpubot.core.policy import PURPOSE_MAX_CHARS, ClaimPolicy
from gpubot.core.usage_report import RECENT_DAYS, RecentUsage
from gpubot.slack import actions, fleet_messages
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
from gpubot.slack.messages import QUICK_EXTENSIONS, error_text, free_caveats, gpu_name, offline_note, status_line
from gpubot.slack.mrkdwn import date_token, escape, truncate
from gpubot.slack.usage_messages import totals_line

# The Home tab lists at most this many of a person's own claims with buttons; the rest as lines.
_HOME_CLAIMS_WITH_BUTTONS = 10
# The blocks a fleet's Home gives its host lines at most.
_HOME_HOST_BLOCKS = 12
_SPARK = "▁▂▃▄▅▆▇█"


def home_view(
    state: HomeState | FleetHome,
    policy: ClaimPolicy,
    timezone: ZoneInfo,
    thresholds: LoadThresholds,
    trends: Mapping[str, tuple[float | None, ...]],
    flash: Message | None = None,
    recent: RecentUsage | None = None,
) -> Block:
    """The App Home tab: the person's own claims with Release/Extend, then every GPU with Claim buttons.

    In a fleet of several hosts, every host in a line and a menu to show one host's GPUs in full. `flash` is the
    outcome of what the person just did, shown at the top; `recent`, the last week's usage under the claims.
    Stays within 100 blocks.
    """
    if isinstance(state, FleetHome):
        return _fleet_home_view(state, policy, timezone, thresholds, trends, flash, recent)
    dashboard = state.dashboard
    top = _your_gpus(state.own_claims, policy, dashboard.now, timezone, flash, recent, several=False)
    top.append(header(f"All GPUs · {dashboard.free_count} of {len(dashboard.rows)} free{free_caveats(dashboard)}"))
    footer = context(
        f"Updated {date_token(dashboard.now, timezone)} · 📈 utilization over the last hour · " + figures.load_legend()
    )
    gpu_blocks = _gpu_blocks(dashboard, MAX_VIEW_BLOCKS - len(top) - 1, timezone, thresholds, trends, several=False)
    return {"type": "home", "blocks": [*top, *gpu_blocks, footer]}


def _fleet_home_view(
    state: FleetHome,
    policy: ClaimPolicy,
    timezone: ZoneInfo,
    thresholds: LoadThresholds,
    trends: Mapping[str, tuple[float | None, ...]],
    flash: Message | None,
    recent: RecentUsage | None,
) -> Block:
    fleet, shown = state.fleet, state.expanded
    blocks = _your_gpus(state.own_claims, policy, fleet.now, timezone, flash, recent, several=True)
    blocks.append(header(f"Fleet · {fleet.free_count} of {fleet.gpu_count} free on {len(fleet.hosts)} hosts"))
    names = list(fleet.names)
    if shown is not None and shown.host not in names[:MAX_SELECT_OPTIONS]:
        names = [shown.host, *names[: MAX_SELECT_OPTIONS - 1]]
    host_menu: Block = {
        "type": "static_select",
        "action_id": actions.HOME_HOST,
        "placeholder": plain("Show a host's GPUs…"),
        "options": [option(name, name) for name in names[:MAX_SELECT_OPTIONS]],
    }
    if shown is not None:
        host_menu["initial_option"] = option(shown.host, shown.host)
    blocks.append({"type": "actions", "elements": [host_menu]})
    lines = [fleet_messages.host_line(host, timezone) for host in fleet.hosts]
    blocks.extend(pack_lines(lines, _HOME_HOST_BLOCKS, noun="hosts"))
    footer = context(
        f"Updated {date_token(fleet.now, timezone)} · 📈 utilization over the last hour · " + figures.load_legend()
    )
    if shown is None:
        blocks.append(context("Pick a host above to see its GPUs, each free one with a Claim button."))
        return {"type": "home", "blocks": [*blocks, footer]}
    blocks.append({"type": "divider"})
    blocks.append(header(f"{shown.host} · {shown.free_count} of {len(shown.rows)} free{free_caveats(shown)}"))
    if not shown.online:
        blocks.append(section("⚫ " + offline_note(shown, timezone)))
    budget = MAX_VIEW_BLOCKS - len(blocks) - 1
    return {
        "type": "home",
        "blocks": [*blocks, *_gpu_blocks(shown, budget, timezone, thresholds, trends, True), footer],
    }


def _your_gpus(
    own_claims: Sequence[Claim],
    policy: ClaimPolicy,
    now: datetime,
    timezone: ZoneInfo,
    flash: Message | None,
    recent: RecentUsage | None,
    several: bool,
) -> list[Block]:
    """The Home tab's top: what the person just did, their claims with buttons, the week's usage, Claim GPUs…."""
    top: list[Block] = [header("Your GPUs")]
    if flash is not None:
        top.extend(flash.blocks[:2])
    if not own_claims:
        top.append(section("You hold no GPUs."))
    for claim in own_claims[:_HOME_CLAIMS_WITH_BUTTONS]:
        top.extend(_own_claim_blocks(claim, policy, now, timezone, several))
    extra = own_claims[_HOME_CLAIMS_WITH_BUTTONS:]
    if extra:
        top.append(context(f"…and {len(extra)} more: " + ", ".join(f"GPU {gpu_name(c, several)}" for c in extra)))
    if recent is not None:
        top.append(context(recent_usage_line(recent)))
    top.append({"type": "actions", "elements": [button("Claim GPUs…", actions.CLAIM_FORM, "open", style="primary")]})
    top.append({"type": "divider"})
    return top


def recent_usage_line(recent: RecentUsage) -> str:
    """E.g. "📊 Your last 7 days: held 12.5 GPU-h · busy 10.0 GPU-h (80%) · … — the team: held …"."""
    line = f"📊 Your last {RECENT_DAYS} days: {totals_line(recent.mine)}"
    if recent.team is not None:
        line += f" — the team: {totals_line(recent.team)}"
    return line


def _gpu_blocks(
    dashboard: Dashboard,
    budget: int,
    timezone: ZoneInfo,
    thresholds: LoadThresholds,
    trends: Mapping[str, tuple[float | None, ...]],
    several: bool,
) -> list[Block]:
    """A host's GPUs on the Home tab: a block each with its figures while they fit in `budget`, else lines."""
    rows = dashboard.rows
    if not rows:
        return [section("No GPUs found on this host.")]
    if len(rows) <= budget:
        # An offline host's GPUs cannot be claimed: no Claim buttons.
        claimable = dashboard.online
        return [_home_gpu_block(row, dashboard.now, timezone, thresholds, trends, several, claimable) for row in rows]
    lines = [status_line(row, dashboard.now, timezone, compact=True) for row in rows]
    return pack_lines(lines, budget, noun="GPUs")


def fleet_claim_modal(fleet: Fleet, policy: ClaimPolicy, host: str | None, preselect: str | None) -> Block:
    """The claim form for the fleet: with several hosts, a host menu first and the free GPUs of the host picked.

    `host` is the host picked (None: the first online host with a free GPU); `preselect` a GPU's label on it.
    Picking another host in the menu sends an action whose answer updates the form (`views.update`), so no
    menu ever holds more than one host's GPUs.
    """
    if not fleet.several:
        return claim_modal(fleet.hosts[0], policy, preselect)
    if host is None:
        # A GPU named without its host (a button from before the fleet grew) could be any host's.
        preselect = None
    choices = [
        dashboard
        for dashboard in fleet.hosts
        if dashboard.online and any(row.free and not row.use.unclaimable for row in dashboard.rows)
    ]
    chosen = next((dashboard for dashboard in fleet.hosts if dashboard.host == host and dashboard.online), None)
    chosen = chosen or (choices[0] if choices else None)
    if chosen is None:
        text = "No GPU of the fleet can be claimed right now; `/gpu status` shows when claims end."
        return {**_modal_frame(), "blocks": [section(text)]}
    return claim_modal(chosen, policy, preselect, hosts=choices)


def _modal_frame() -> Block:
    return {
        "type": "modal",
        "callback_id": actions.CLAIM_MODAL_CALLBACK,
        "title": plain("Claim GPUs"),
        "close": plain("Cancel"),
    }


def claim_modal(
    dashboard: Dashboard, policy: ClaimPolicy, preselect: str | None, hosts: Sequence[Dashboard] | None = None
) -> Block:
    """The claim form: free GPUs (the clicked one preselected; those in use say by whom), a purpose, a duration.

    MIG slices are offered under their card with their profile (`GPU 0.2 · MIG 1g.10gb`); a GPU held through
    its card or slices is not free. A GPU that is not responding or unreadable cannot be claimed, so it is
    not offered; a line under the choice says so. With `hosts` (a fleet's hosts with free GPUs), a host menu
    comes first, `dashboard` is the host picked, and each GPU's value names its host (`box-2:3`).
    """
    unclaimed = [row for row in dashboard.rows if row.free]
    offered = [row for row in unclaimed if not row.use.unclaimable]
    free = offered[:MAX_SELECT_OPTIONS]
    if preselect is not None and all(row.gpu.label != preselect for row in free):
        # The clicked GPU is offered even past the select's limit; it comes after all the others, so last.
        clicked = [row for row in offered if row.gpu.label == preselect]
        free = offered[: MAX_SELECT_OPTIONS - len(clicked)] + clicked
    silent = [row for row in unclaimed if row.use.unclaimable]
    base = _modal_frame()
    host_menu = [] if hosts is None else [_host_menu(dashboard.host, hosts)]
    if not free:
        nothing = "Every GPU is claimed right now; `/gpu status` shows when they end."
        if silent:
            nothing = f"No GPU can be claimed right now: {_not_responding_list(silent)}. {nothing}"
        return {**base, "blocks": [*host_menu, section(nothing)]}
    prefix = "" if hosts is None else f"{dashboard.host}:"
    options = {row.gpu.label: option(_gpu_option_text(row), f"{prefix}{row.gpu.label}") for row in free}
    gpu_select: Block = {
        "type": "multi_static_select",
        # One id per host: a form updated to another host starts with nothing picked.
        "action_id": actions.GPUS_INPUT if hosts is None else f"{actions.GPUS_INPUT}@{dashboard.host}",
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
            *host_menu,
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


def _host_menu(chosen: str, hosts: Sequence[Dashboard]) -> Block:
    """The claim form's host menu: hosts with a free GPU (at most a menu's worth), `chosen` picked."""
    offered = [host for host in hosts if host.host != chosen][: MAX_SELECT_OPTIONS - 1]
    by_name = sorted([*offered, *(host for host in hosts if host.host == chosen)], key=lambda host: host.host)
    options = {host.host: option(f"{host.host} · {host.free_count} free", host.host) for host in by_name}
    menu: Block = {"type": "static_select", "action_id": actions.HOST_INPUT, "options": list(options.values())}
    if chosen in options:
        menu["initial_option"] = options[chosen]
    # dispatch_action: picking a host sends an action at once, whose answer shows that host's GPUs.
    return {**input_block(actions.HOST_INPUT, "Host", menu), "dispatch_action": True}


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


def _own_claim_blocks(
    claim: Claim, policy: ClaimPolicy, now: datetime, timezone: ZoneInfo, several: bool
) -> list[Block]:
    text = (
        f"*GPU {gpu_name(claim, several)}* · {escape(claim.purpose)}\n"
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
    several: bool,
    claimable: bool,
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
    if claimable and row.free and not row.use.unclaimable:
        label = address(row.gpu.label, row.gpu.host, several)
        block["accessory"] = button("Claim", actions.claim_gpu_action_id(label), label)
    return block
