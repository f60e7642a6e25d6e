"""The weekly digest's schedule: `GPUBOT_DIGEST_AT` (`mon 09:00`) in the team's time zone. Pure; time is passed in.

A digest is due at each scheduled moment and covers the seven days before it. It is identified by that moment,
so whichever daemon posts it, and whenever (a daemon that was down posts the latest one it missed, within the
week), the database lets it go out once.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from gpubot.core.clock import Clock
from gpubot.core.errors import ConfigError
from gpubot.core.usage_report import UsageFilter, UsageReport, usage_report

if TYPE_CHECKING:  # the ports name the core's types; this names the ports'
    from gpubot.core.ports import DigestStore, UsageSource

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


# A daemon that was down when a digest fell due still posts it within this long; later, that week is skipped.
LATE_ENOUGH = timedelta(days=1)
# How long a daemon has to post a digest it took before another may take it over.
DIGEST_LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class DigestJob:
    """A digest this daemon took: the moment it is due for (its identity), the lease, and the week's report."""

    due_at: datetime
    lease: str
    channel: str
    report: UsageReport


class WeeklyDigest:
    """Decides when a digest is due and takes it for this daemon, so that one daemon posts each week's, once.

    Args:
        store: where each week's digest is recorded (taken, posting, posted).
        usage: the usage sums the digest reports.
        clock: the time.
        schedule: GPUBOT_DIGEST_AT.
        channel: GPUBOT_DIGEST_CHANNEL.
    """

    def __init__(
        self, store: DigestStore, usage: UsageSource, clock: Clock, schedule: DigestSchedule, channel: str
    ) -> None:
        self._store = store
        self._usage = usage
        self._clock = clock
        self.schedule = schedule
        self.channel = channel

    def take_due(self) -> DigestJob | None:
        """The latest scheduled digest if it is due, recent enough and nobody took it; None otherwise.

        Raises:
            StoreBusy: the database did not answer.
        """
        now = self._clock.now()
        due_at = self.schedule.latest_due(now)
        if now - due_at > LATE_ENOUGH:
            return None
        return self._take(due_at, *self.schedule.period(due_at))

    def take_now(self) -> DigestJob | None:
        """A digest of the seven days up to now, posted at once (`gpubot digest --now`); None if one is posting."""
        now = self._clock.now()
        return self._take(now, now - timedelta(days=7), now)

    def _take(self, due_at: datetime, since: datetime, until: datetime) -> DigestJob | None:
        lease = uuid.uuid4().hex
        now = self._clock.now()
        if not self._store.take_digest(due_at, self.channel, lease, now, now + DIGEST_LEASE):
            return None
        figures = self._usage.usage_figures(since, until, UsageFilter())
        title = f"the team, week to {until.astimezone(self.schedule.timezone):%a %d %b}"
        return DigestJob(
            due_at, lease, self.channel, usage_report(title, since, until, figures, self.schedule.timezone)
        )
