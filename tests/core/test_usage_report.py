"""The usage report folds the database's sums: totals, people, purposes and the busiest hours of the week."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from gpubot.core.usage_report import (
    BusyHour,
    HourUtilization,
    PersonUsage,
    PurposeUsage,
    UsageFigures,
    UsageTotals,
    top_purposes,
    usage_report,
    week_grid,
)

BERLIN = ZoneInfo("Europe/Berlin")
UNTIL = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)
SINCE = UNTIL - timedelta(days=7)
HOUR = 3600.0


def test_totals_add_up_people_and_busy_share_is_over_the_observed_time():
    figures = UsageFigures(
        people=(
            PersonUsage("U0BOB", UsageTotals(held_s=2 * HOUR, observed_s=2 * HOUR, busy_s=0.5 * HOUR, claims=1)),
            PersonUsage("U0ALICE", UsageTotals(held_s=4 * HOUR, observed_s=3 * HOUR, busy_s=3 * HOUR, claims=2)),
        )
    )
    report = usage_report("team", SINCE, UNTIL, figures, BERLIN)

    assert report.totals == UsageTotals(held_s=6 * HOUR, observed_s=5 * HOUR, busy_s=3.5 * HOUR, claims=3)
    assert report.totals.busy_share == 0.7
    assert report.totals.idle_s == 1.5 * HOUR
    assert [person.user_id for person in report.people] == ["U0ALICE", "U0BOB"]  # most held first
    assert report.days == 7


def test_nothing_observed_has_no_busy_share_rather_than_zero():
    assert UsageTotals(held_s=HOUR).busy_share is None
    assert UsageTotals(held_s=HOUR).idle_s == 0


def test_purposes_in_another_case_or_spacing_are_one_and_the_top_five_are_kept():
    purposes = [
        PurposeUsage("Fine-tune llama", HOUR),
        PurposeUsage("fine-tune  LLAMA", 2 * HOUR),
        *(PurposeUsage(f"job {n}", n * 60.0) for n in range(1, 8)),
        PurposeUsage("never held", 0.0),
    ]
    top = top_purposes(purposes)

    assert top[0] == PurposeUsage("Fine-tune llama", 3 * HOUR)
    assert [p.purpose for p in top[1:]] == ["job 7", "job 6", "job 5", "job 4"]


def test_the_week_grid_is_in_the_team_time_zone_weighted_by_the_seconds_seen():
    # Monday 2026-11-23 08:00 UTC is 09:00 in Berlin (CET).
    monday_8_utc = datetime(2026, 11, 23, 8, tzinfo=timezone.utc)
    hours = [
        HourUtilization(monday_8_utc, 90.0, 3 * HOUR),
        HourUtilization(monday_8_utc + timedelta(days=7), 10.0, HOUR),  # the same hour of the week, a week on
        HourUtilization(monday_8_utc + timedelta(hours=1), 50.0, 0.0),  # never observed: not an idle hour
    ]
    grid = week_grid(hours, BERLIN)

    assert grid[0][9] == 70.0  # (90×3 + 10×1) / 4
    assert grid[0][10] is None
    assert sum(value is not None for row in grid for value in row) == 1


def test_the_busiest_hours_come_first_and_label_themselves():
    tuesday_13_utc = datetime(2026, 11, 24, 13, tzinfo=timezone.utc)
    figures = UsageFigures(
        hours=(
            HourUtilization(tuesday_13_utc, 80.0, HOUR),
            HourUtilization(tuesday_13_utc + timedelta(hours=1), 95.0, HOUR),
            HourUtilization(tuesday_13_utc + timedelta(days=1), 20.0, HOUR),
            HourUtilization(tuesday_13_utc + timedelta(days=2), 0.0, HOUR),
            HourUtilization(tuesday_13_utc + timedelta(days=3), 5.0, HOUR),
        )
    )
    busiest = usage_report("team", SINCE, UNTIL, figures, BERLIN).busiest

    assert busiest == (BusyHour(1, 15, 95.0), BusyHour(1, 14, 80.0), BusyHour(2, 14, 20.0))
    assert busiest[0].label == "Tue 15:00"
