"""`/gpu usage`'s reply built from a report, without Slack: figures as people read them, within Block Kit's limits."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from gpubot.core.usage_report import HourUtilization, PersonUsage, PurposeUsage, UsageFigures, UsageTotals, usage_report
from gpubot.slack.usage_messages import gpu_hours, totals_line, usage_message
from tests.slack.test_fleet_blocks import within_limits

UNTIL = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)
HOUR = 3600.0


def report(figures: UsageFigures, title: str = "the team"):
    return usage_report(title, UNTIL - timedelta(days=30), UNTIL, figures, ZoneInfo("Europe/Berlin"))


def test_gpu_hours_read_as_people_compare_them():
    assert [gpu_hours(s) for s in (0, 1080, 45_000, 3_600_000)] == ["0 GPU-h", "0.3 GPU-h", "12.5 GPU-h", "1,000 GPU-h"]


def test_the_totals_line_gives_the_busy_share_and_what_was_not_observed():
    totals = UsageTotals(held_s=4 * HOUR, observed_s=3 * HOUR, busy_s=2.4 * HOUR, claims=2)
    assert (
        totals_line(totals)
        == "held 4.0 GPU-h · busy 2.4 GPU-h (80%) · idle while held 0.6 GPU-h · not observed 1.0 GPU-h"
    )
    unseen = UsageTotals(held_s=HOUR, claims=1)
    assert totals_line(unseen) == "held 1.0 GPU-h · busy 0 GPU-h · idle while held 0 GPU-h · not observed 1.0 GPU-h"


def test_a_team_report_lists_each_person_the_purposes_and_the_busiest_hours():
    figures = UsageFigures(
        people=(
            PersonUsage("U0BOB", UsageTotals(HOUR, HOUR, 0.0, 1)),
            PersonUsage("U0ALICE", UsageTotals(10 * HOUR, 10 * HOUR, 9 * HOUR, 3)),
        ),
        purposes=(PurposeUsage("fine-tune <llama>", 10 * HOUR), PurposeUsage("debug", HOUR)),
        hours=(HourUtilization(datetime(2026, 11, 24, 13, tzinfo=timezone.utc), 88.0, HOUR),),
    )
    message = usage_message(report(figures), team_view=True)
    text = json.dumps(message.blocks, ensure_ascii=False)

    assert message.blocks[0]["text"]["text"] == "GPU usage: the team, last 30 days"
    assert "*4 claims* — held 11.0 GPU-h · busy 9.0 GPU-h (82%) · idle while held 2.0 GPU-h" in text
    assert text.index("<@U0ALICE>") < text.index("<@U0BOB>")
    assert "fine-tune &lt;llama&gt; (10.0 GPU-h), debug (1.0 GPU-h)" in text
    assert "Tue 14:00 (88 %)" in text
    within_limits(message.blocks, 50)


def test_ones_own_report_names_no_one_and_an_empty_period_says_so():
    mine = UsageFigures(people=(PersonUsage("U0ALICE", UsageTotals(HOUR, HOUR, HOUR, 1)),))
    assert "<@U0ALICE>" not in json.dumps(usage_message(report(mine, "you"), team_view=False).blocks)
    empty = usage_message(report(UsageFigures(), "you"), team_view=False)
    assert "No claims in this period." in json.dumps(empty.blocks)


def test_a_big_team_stays_within_block_kit_limits():
    people = tuple(PersonUsage(f"U{n:08d}", UsageTotals(n * HOUR, n * HOUR, n * 0.5 * HOUR, n)) for n in range(1, 400))
    message = usage_message(report(UsageFigures(people=people)), team_view=True)
    within_limits(message.blocks, 50)
    assert "more people" in json.dumps(message.blocks)


def test_a_release_carries_each_claims_receipt_and_nudges_when_it_was_mostly_idle():
    from gpubot.core.models import Claim, ClaimStatus, ClaimUsage, Tally
    from gpubot.core.outcomes import ReleaseOutcome
    from gpubot.slack.messages import release_message

    def ended(claim_id: int, index: int) -> Claim:
        start = UNTIL - timedelta(hours=2)
        return Claim(
            claim_id,
            "box",
            f"GPU-{index}",
            index,
            "U0ALICE",
            "train",
            start,
            UNTIL,
            ClaimStatus.RELEASED,
            ended_at=UNTIL,
        )

    busy = ClaimUsage(1, Tally(7200, 7200, 90 * 7200, 7200, 100, 40_960), frozenset({"alice"}))
    idle = ClaimUsage(2, Tally(7200, 60, 0, 7200, 1, 300), frozenset())
    one = release_message(ReleaseOutcome((ended(1, 0),), (), usage={1: busy}))
    text = json.dumps(one.blocks, ensure_ascii=False)
    assert "🧾 held 2h · busy 2h (100%) · average utilization 90% · peak memory 40 GiB" in text
    assert "mostly idle" not in text

    two = release_message(ReleaseOutcome((ended(1, 0), ended(2, 1)), (), usage={1: busy, 2: idle}))
    text = json.dumps(two.blocks, ensure_ascii=False)
    assert "🧾 GPU 0: held 2h · busy 2h (100%)" in text and "🧾 GPU 1: held 2h · busy 1m (1%)" in text
    assert text.count("mostly idle") == 1
    within_limits(two.blocks, 50)


def test_the_home_tab_shows_the_week_under_ones_claims():
    from gpubot.core.usage_report import RecentUsage
    from gpubot.slack.views import recent_usage_line

    mine = UsageTotals(held_s=4 * HOUR, observed_s=4 * HOUR, busy_s=HOUR, claims=2)
    assert recent_usage_line(RecentUsage(mine, None)) == (
        "📊 Your last 7 days: held 4.0 GPU-h · busy 1.0 GPU-h (25%) · idle while held 3.0 GPU-h"
    )
    team = UsageTotals(held_s=100 * HOUR, observed_s=100 * HOUR, busy_s=50 * HOUR, claims=9)
    assert recent_usage_line(RecentUsage(mine, team)).endswith(
        "— the team: held 100 GPU-h · busy 50.0 GPU-h (50%) · idle while held 50.0 GPU-h"
    )
