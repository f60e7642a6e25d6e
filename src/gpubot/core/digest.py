"""The weekly digest's schedule: `GPUBOT_DIGEST_AT` (`mon 09:00`) in the team's time zone. Pure; time is passed in.

A digest is due at each scheduled moment and covers the seven days before it. It is identified by that moment,
so whichever daemon posts it, and whenever (a daemon that was down posts the latest one it missed, within the
week), the database lets it go out once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from gpubot.core.errors import ConfigError

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SCHEDULE = re.compile(r"(?P<day>[a-z]{3})[a-z]*\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})")


@dataclass(frozen=True)
class DigestSchedule:
    """A weekday and a wall-clock time in a time zone."""

    weekday: int  # 0 = Monday
    at: time
    timezone: ZoneInfo

    @classmethod
    def parse(cls, text: str, timezone: ZoneInfo, variable: str = "GPUBOT_DIGEST_AT") -> DigestSchedule:
        """Read `mon 09:00` (a day's name or its first three letters, a 24-hour time).

        Raises:
            ConfigError: anything else, naming `variable`.
        """
        expected = "a day and a 24-hour time, such as `mon 09:00`"
        found = _SCHEDULE.fullmatch(text.strip().lower())
        if found is None or found["day"] not in _DAYS:
            raise ConfigError(variable, expected)
        hour, minute = int(found["hour"]), int(found["minute"])
        if hour > 23 or minute > 59:
            raise ConfigError(variable, expected)
        return cls(_DAYS.index(found["day"]), time(hour, minute), timezone)

    def latest_due(self, now: datetime) -> datetime:
        """The most recent scheduled moment at or before `now`, in UTC (DST-correct: the wall-clock time holds)."""
        local = now.astimezone(self.timezone)
        day = local.date() - timedelta(days=(local.weekday() - self.weekday) % 7)
        moment = datetime.combine(day, self.at, tzinfo=self.timezone)
        if moment > local:
            moment = datetime.combine(day - timedelta(days=7), self.at, tzinfo=self.timezone)
        return moment.astimezone(timezone.utc)

    def period(self, due: datetime) -> tuple[datetime, datetime]:
        """The week a digest due at `due` covers, in UTC.

        It starts at the scheduled moment a week before: 167 or 169 hours across a change of daylight saving time.
        """
        local = due.astimezone(self.timezone)
        start = datetime.combine(local.date() - timedelta(days=7), self.at, tzinfo=self.timezone)
        return start.astimezone(timezone.utc), due

    def describe(self) -> str:
        """E.g. "Mondays at 09:00 (Europe/Berlin)"."""
        name = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")[self.weekday]
        return f"{name} at {self.at:%H:%M} ({self.timezone.key})"
