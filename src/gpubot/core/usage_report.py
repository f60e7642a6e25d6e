"""What `/gpu usage`, `gpubot usage` and the weekly digest report: GPU-hours held and busy over a period.

Pure: the sums come from a `UsageSource` (the database's rollups and claim tallies); this module turns them into
a report people read: totals, the share of held time the GPUs were busy, the hours held but idle, the top
purposes, each person's figures for a team view, and the busiest hours of the week in the team's time zone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from gpubot.core.clock import Clock
from gpubot.core.commands import UsageCommand
from gpubot.core.errors import CommandError, quote
from gpubot.core.models import Gpu

if TYPE_CHECKING:  # the ports name this module's types; the service names the ports'
    from gpubot.core.ports import PeopleStore, UsageSource

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
class GpuFigures:
    """One GPU over the period: hours held by claims, and what telemetry saw of it, claimed or not."""

    host: str
    uuid: str
    name: str | None
    held_s: float = 0.0
    observed_s: float = 0.0
    busy_s: float = 0.0
    utilization_avg: float | None = None


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
    gpus: tuple[GpuFigures, ...] = ()


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


def top_purposes(purposes: Iterable[PurposeUsage], count: int | None = TOP_PURPOSES) -> tuple[PurposeUsage, ...]:
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


# The Home tab's "last 7 days" figures are read again at most this often per person (and for the team).
RECENT_DAYS = 7
RECENT_MAX_AGE = timedelta(minutes=5)

Visibility = Literal["team", "admins"]
VISIBILITIES: tuple[Visibility, ...] = ("team", "admins")


@dataclass(frozen=True)
class UsageView:
    """A report and how to show it: a team view (a team, a host or a model) lists each person.

    `figures` are the sums it was made of, whole (every purpose, every GPU), for the host's tables and CSV.
    """

    report: UsageReport
    team_view: bool
    figures: UsageFigures = field(default_factory=UsageFigures)


@dataclass(frozen=True)
class RecentUsage:
    """The Home tab's line: the person's last `RECENT_DAYS` days, and the team's where they may see it."""

    mine: UsageTotals
    team: UsageTotals | None


class UsageReports:
    """Answers `/gpu usage` and `gpubot usage`: resolves whose or what usage is asked for, and who may see it.

    Args:
        source: the database's sums.
        people: display names, to find `@alice`.
        inventory: every GPU known, for host names and GPU models.
        clock: the time the period ends.
        timezone: the team's, for the hours of the week.
        admins: who may see everyone's figures when `visibility` is "admins".
        visibility: "team": everyone sees everyone's; "admins": people see their own, admins everyone's.
    """

    def __init__(
        self,
        source: UsageSource,
        people: PeopleStore,
        inventory: Callable[[], Sequence[Gpu]],
        clock: Clock,
        timezone: ZoneInfo,
        admins: frozenset[str] = frozenset(),
        visibility: Visibility = "team",
    ) -> None:
        self._source = source
        self._people = people
        self._inventory = inventory
        self._clock = clock
        self._timezone = timezone
        self._admins = admins
        self._visibility = visibility
        self._recent: dict[str | None, tuple[datetime, UsageTotals]] = {}

    def report(self, user_id: str | None, command: UsageCommand, *, per_gpu: bool = False) -> UsageView:
        """The report `command` asks for, as `user_id` may see it (None: the host's admin at a terminal).

        With `per_gpu`, its figures hold each GPU's too (`gpubot usage --by gpu|host`).

        Raises:
            CommandError: nobody by that name, no host or model by that name, or (visibility "admins") someone
                else's or the team's figures asked for by someone who is not an admin.
        """
        until = self._clock.now()
        since = until - timedelta(days=command.days)
        scope = command.scope
        title, where, team_view = self._resolve(user_id, scope.kind, scope.value)
        figures = self._source.usage_figures(since, until, where, per_gpu=per_gpu)
        return UsageView(usage_report(title, since, until, figures, self._timezone), team_view, figures)

    def recent_if_fresh(self, user_id: str) -> RecentUsage | None:
        """The Home tab's figures if both were read within `RECENT_MAX_AGE`; None: call `recent` (it reads)."""
        now = self._clock.now()
        mine = self._fresh(user_id, now)
        if mine is None:
            return None
        if not self._may_see_team(user_id):
            return RecentUsage(mine, None)
        team = self._fresh(None, now)
        return None if team is None else RecentUsage(mine, team)

    def recent(self, user_id: str) -> RecentUsage:
        """The person's last `RECENT_DAYS` days and (if they may see it) the team's, read at most every few minutes."""
        mine = self._recent_totals(user_id)
        return RecentUsage(mine, self._recent_totals(None) if self._may_see_team(user_id) else None)

    def _recent_totals(self, user_id: str | None) -> UsageTotals:
        now = self._clock.now()
        fresh = self._fresh(user_id, now)
        if fresh is not None:
            return fresh
        figures = self._source.usage_figures(now - timedelta(days=RECENT_DAYS), now, UsageFilter(user_id=user_id))
        totals = sum((person.totals for person in figures.people), UsageTotals())
        self._recent[user_id] = (now, totals)
        return totals

    def _fresh(self, user_id: str | None, now: datetime) -> UsageTotals | None:
        cached = self._recent.get(user_id)
        return cached[1] if cached is not None and now - cached[0] < RECENT_MAX_AGE else None

    def _may_see_team(self, user_id: str) -> bool:
        return self._visibility == "team" or user_id in self._admins

    def _resolve(self, user_id: str | None, kind: str, value: str | None) -> tuple[str, UsageFilter, bool]:
        if kind == "me":
            if user_id is None:
                raise CommandError("At the terminal there is no `me`: name a person, `team`, a host or a model.")
            return "you", UsageFilter(user_id=user_id), False
        if kind == "person":
            person_id, name = self._person(value or "")
            if person_id != user_id:
                self._may_see_others(user_id)
            return ("you" if person_id == user_id else f"@{name}"), UsageFilter(user_id=person_id), False
        self._may_see_others(user_id)
        if kind == "team":
            return "the team", UsageFilter(), True
        return self._host_or_model(value or "")

    def _may_see_others(self, user_id: str | None) -> None:
        if user_id is not None and not self._may_see_team(user_id):
            raise CommandError(
                "Only admins can see other people's and the team's usage here; `/gpu usage` shows your own."
            )

    def _person(self, value: str) -> tuple[str, str]:
        if _looks_like_user_id(value):
            known = self._people.people([value])
            return value, known[value].display_name if value in known else value
        matches = self._people.people_named(value)
        if not matches:
            raise CommandError(
                f"I don't know anyone called {quote('@' + value)} yet. Mention them, or ask after they have"
                " used gpubot."
            )
        if len({person.user_id for person in matches}) > 1:
            raise CommandError(f"Several people are called {quote('@' + value)}: mention the one you mean.")
        return matches[0].user_id, matches[0].display_name

    def _host_or_model(self, value: str) -> tuple[str, UsageFilter, bool]:
        gpus = self._inventory()
        hosts = sorted({gpu.host for gpu in gpus})
        if value in hosts:
            return value, UsageFilter(host=value), True
        models = sorted({gpu.name for gpu in gpus if gpu.name and value.lower() in gpu.name.lower()})
        if models:
            return (models[0] if len(models) == 1 else value), UsageFilter(model=value), True
        known = sorted({gpu.name for gpu in gpus if gpu.name})
        raise CommandError(
            f"No host or GPU model is called {quote(value)}. Hosts: {', '.join(hosts) or 'none yet'};"
            f" models: {', '.join(known) or 'none yet'}."
        )


def _looks_like_user_id(value: str) -> bool:
    return len(value) >= 2 and value[0] in "UW" and value.isalnum() and value.isupper()
