"""What `/gpu usage`, `gpubot usage` and the weekly digest report: GPU-hours held and busy over a period.

Pure: the sums come from a `UsageSource` (the database's rollups and claim tallies); this module turns them into
a report people read: totals, the share of held time the GPUs were busy, the hours held but idle, the top
purposes, each person's figures for a team view, and the busiest hours of the week in the team's time zone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

TOP_PURPOSES = 5
BUSIEST_HOURS = 3
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class UsageTotals:
    """Claim time over a period, in seconds.

    `held_s` is the time the claims were held within the period; `observed_s` the part of it telemetry saw
    (a host offline or a daemon down is not observed); `busy_s` the observed part the GPUs were busy.
    """

    held_s: float = 0.0
    observed_s: float = 0.0
    busy_s: float = 0.0
    claims: int = 0

    @property
    def idle_s(self) -> float:
        """Observed while held, and idle: the time someone else could have used."""
        return max(self.observed_s - self.busy_s, 0.0)

    @property
    def busy_share(self) -> float | None:
        """Busy over observed; None when nothing was observed."""
        return self.busy_s / self.observed_s if self.observed_s > 0 else None

    def __add__(self, other: UsageTotals) -> UsageTotals:
        return UsageTotals(
            self.held_s + other.held_s,
            self.observed_s + other.observed_s,
            self.busy_s + other.busy_s,
            self.claims + other.claims,
        )


@dataclass(frozen=True)
class PersonUsage:
    """One person's claims over the period."""

    user_id: str
    totals: UsageTotals


@dataclass(frozen=True)
class PurposeUsage:
    """GPU-hours held for one purpose (as typed, compared without case)."""

    purpose: str
    held_s: float


@dataclass(frozen=True)
class HourUtilization:
    """The GPUs' average utilization in one clock hour (UTC start), weighted by the seconds each GPU was seen."""

    hour: datetime
    utilization_pct: float
    observed_s: float


@dataclass(frozen=True)
class UsageFilter:
    """Which claims and GPUs to sum: one person's, one host's, one GPU model's, or (all None) the team's."""

    user_id: str | None = None
    host: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class UsageFigures:
    """The database's sums for a period and a filter."""

    people: tuple[PersonUsage, ...] = ()
    purposes: tuple[PurposeUsage, ...] = ()
    hours: tuple[HourUtilization, ...] = ()


@dataclass(frozen=True)
class BusyHour:
    """An hour of the week (in the team's time zone) and the GPUs' average utilization in it."""

    weekday: int  # 0 = Monday
    hour: int
    utilization_pct: float

    @property
    def label(self) -> str:
        """E.g. "Tue 14:00"."""
        return f"{WEEKDAYS[self.weekday]} {self.hour:02d}:00"


@dataclass(frozen=True)
class UsageReport:
    """A period's usage as people read it."""

    title: str
    since: datetime
    until: datetime
    totals: UsageTotals
    people: tuple[PersonUsage, ...]
    purposes: tuple[PurposeUsage, ...]
    busiest: tuple[BusyHour, ...]
    week_grid: tuple[tuple[float | None, ...], ...] = field(default=())

    @property
    def days(self) -> int:
        """The period's length in whole days."""
        return round((self.until - self.since) / timedelta(days=1))


def usage_report(
    title: str, since: datetime, until: datetime, figures: UsageFigures, timezone: ZoneInfo
) -> UsageReport:
    """Fold the database's sums into the report: totals, people by hours held, top purposes, busiest hours."""
    totals = sum((person.totals for person in figures.people), UsageTotals())
    people = tuple(sorted(figures.people, key=lambda person: (-person.totals.held_s, person.user_id)))
    grid = week_grid(figures.hours, timezone)
    return UsageReport(
        title=title,
        since=since,
        until=until,
        totals=totals,
        people=people,
        purposes=top_purposes(figures.purposes),
        busiest=busiest_hours(grid),
        week_grid=grid,
    )


def top_purposes(purposes: Iterable[PurposeUsage], count: int = TOP_PURPOSES) -> tuple[PurposeUsage, ...]:
    """The purposes with the most hours held; the same words in another case are one purpose."""
    held: dict[str, float] = defaultdict(float)
    spelled: dict[str, str] = {}
    for purpose in purposes:
        key = " ".join(purpose.purpose.lower().split())
        held[key] += purpose.held_s
        spelled.setdefault(key, purpose.purpose)
    ranked = sorted(held.items(), key=lambda item: (-item[1], item[0]))
    return tuple(PurposeUsage(spelled[key], seconds) for key, seconds in ranked[:count] if seconds > 0)


def week_grid(hours: Sequence[HourUtilization], timezone: ZoneInfo) -> tuple[tuple[float | None, ...], ...]:
    """Average utilization by weekday (rows, Monday first) and hour of the day (columns) in `timezone`.

    Each clock hour counts by the seconds it was observed; an hour of the week never observed is None.
    """
    weighted = [[0.0] * 24 for _ in range(7)]
    seen = [[0.0] * 24 for _ in range(7)]
    for hour in hours:
        if hour.observed_s <= 0:
            continue
        local = hour.hour.astimezone(timezone)
        weighted[local.weekday()][local.hour] += hour.utilization_pct * hour.observed_s
        seen[local.weekday()][local.hour] += hour.observed_s
    return tuple(
        tuple(weighted[day][h] / seen[day][h] if seen[day][h] > 0 else None for h in range(24)) for day in range(7)
    )


def busiest_hours(grid: Sequence[Sequence[float | None]], count: int = BUSIEST_HOURS) -> tuple[BusyHour, ...]:
    """The hours of the week with the highest average utilization, busiest first (ties: earlier in the week)."""
    cells = [
        BusyHour(day, hour, value)
        for day, row in enumerate(grid)
        for hour, value in enumerate(row)
        if value is not None and value > 0
    ]
    cells.sort(key=lambda cell: (-cell.utilization_pct, cell.weekday, cell.hour))
    return tuple(cells[:count])
