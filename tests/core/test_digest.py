"""The weekly digest's schedule: parsing GPUBOT_DIGEST_AT, the latest moment due, and the week it covers."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from gpubot.core.digest import DigestSchedule
from gpubot.core.errors import ConfigError

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "weekday", "at"),
    [("mon 09:00", 0, time(9)), ("Friday 17:30", 4, time(17, 30)), ("  sun 0:05 ", 6, time(0, 5))],
)
def test_a_day_and_a_time(text, weekday, at):
    schedule = DigestSchedule.parse(text, BERLIN)
    assert (schedule.weekday, schedule.at) == (weekday, at)


@pytest.mark.parametrize("text", ["", "monday", "09:00", "mon 9", "mon 24:00", "mon 09:60", "xyz 09:00", "mon 9.00"])
def test_anything_else_names_the_variable(text):
    with pytest.raises(ConfigError) as refused:
        DigestSchedule.parse(text, BERLIN)
    assert refused.value.variable == "GPUBOT_DIGEST_AT" and "mon 09:00" in refused.value.expected


def test_the_latest_moment_due_is_in_the_team_zone():
    schedule = DigestSchedule.parse("mon 09:00", BERLIN)
    # Monday 2026-11-23 09:00 in Berlin (CET) is 08:00 UTC.
    due = datetime(2026, 11, 23, 8, tzinfo=timezone.utc)
    assert schedule.latest_due(due) == due
    assert schedule.latest_due(due - timedelta(seconds=1)) == due - timedelta(days=7)
    assert schedule.latest_due(datetime(2026, 11, 26, 12, tzinfo=timezone.utc)) == due
    assert schedule.describe() == "Mondays at 09:00 (Europe/Berlin)"


def test_the_week_before_a_change_of_daylight_saving_time_keeps_the_wall_clock():
    schedule = DigestSchedule.parse("mon 09:00", BERLIN)
    # Summer time ended on Sunday 2026-10-25: Monday 09:00 was 07:00 UTC on the 19th and 08:00 UTC on the 26th.
    due = schedule.latest_due(datetime(2026, 10, 26, 8, 30, tzinfo=timezone.utc))
    assert due == datetime(2026, 10, 26, 8, tzinfo=timezone.utc)
    start, end = schedule.period(due)
    assert start == datetime(2026, 10, 19, 7, tzinfo=timezone.utc) and end == due
    assert end - start == timedelta(hours=169)
