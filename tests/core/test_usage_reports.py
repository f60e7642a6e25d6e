"""Whose or what usage `/gpu usage` asks for, and who may see it: resolved in the core, before any sum is read."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from gpubot.core.commands import UsageCommand, UsageScope
from gpubot.core.errors import CommandError
from gpubot.core.models import Gpu, Person
from gpubot.core.usage_report import PersonUsage, UsageFigures, UsageFilter, UsageReports, UsageTotals
from tests.fakes import FakeClock, InMemoryClaimStore

NOW = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)
GPUS = [
    Gpu("box-1", "GPU-1", 0, "NVIDIA H100 80GB HBM3"),
    Gpu("box-2", "GPU-2", 0, "NVIDIA A100-SXM4-80GB"),
    Gpu("box-2", "GPU-3", 1, "NVIDIA A100-SXM4-40GB"),
]


class RecordingSource:
    def __init__(self) -> None:
        self.asked: list[tuple[datetime, datetime, UsageFilter]] = []

    def usage_figures(self, since, until, where, per_gpu=False):
        self.asked.append((since, until, where))
        return UsageFigures(people=(PersonUsage("U0ALICE", UsageTotals(3600.0, 3600.0, 1800.0, 1)),))


@pytest.fixture
def people():
    store = InMemoryClaimStore()
    for user_id, name in (("U0ALICE", "alice"), ("U0BOB", "Bob"), ("U0BOB2", "bob")):
        store.save_person(Person(user_id, name, NOW))
    return store


def reports(people, visibility="team"):
    source = RecordingSource()
    clock = FakeClock(NOW)
    service = UsageReports(
        source, people, lambda: GPUS, clock, ZoneInfo("UTC"), admins=frozenset({"U0ADMIN"}), visibility=visibility
    )
    return service, source


@pytest.mark.parametrize(
    ("scope", "where", "title", "team_view"),
    [
        (UsageScope("me"), UsageFilter(user_id="U0ALICE"), "you", False),
        (UsageScope("person", "U0ALICE"), UsageFilter(user_id="U0ALICE"), "you", False),
        (UsageScope("person", "U0CAROL"), UsageFilter(user_id="U0CAROL"), "@U0CAROL", False),
        (UsageScope("team"), UsageFilter(), "the team", True),
        (UsageScope("name", "box-2"), UsageFilter(host="box-2"), "box-2", True),
        (UsageScope("name", "h100"), UsageFilter(model="h100"), "NVIDIA H100 80GB HBM3", True),
        (UsageScope("name", "A100"), UsageFilter(model="A100"), "A100", True),
    ],
)
def test_each_scope_asks_the_source_for_its_filter_over_the_period(people, scope, where, title, team_view):
    service, source = reports(people)
    view = service.report("U0ALICE", UsageCommand(scope, 30))

    assert source.asked == [(NOW - timedelta(days=30), NOW, where)]
    assert (view.report.title, view.team_view) == (title, team_view)
    assert view.report.totals.held_s == 3600.0


def test_a_display_name_is_found_without_case_and_an_ambiguous_one_is_refused(people):
    service, source = reports(people)
    assert service.report("U0BOB", UsageCommand(UsageScope("person", "ALICE"))).report.title == "@alice"
    assert source.asked[-1][2] == UsageFilter(user_id="U0ALICE")
    with pytest.raises(CommandError, match="Several people"):
        service.report("U0ALICE", UsageCommand(UsageScope("person", "bob")))
    with pytest.raises(CommandError, match="don't know anyone"):
        service.report("U0ALICE", UsageCommand(UsageScope("person", "zed")))


def test_an_unknown_host_or_model_lists_what_there_is(people):
    service, source = reports(people)
    with pytest.raises(CommandError) as refused:
        service.report("U0ALICE", UsageCommand(UsageScope("name", "box-9")))
    assert "Hosts: box-1, box-2" in refused.value.message and "NVIDIA A100-SXM4-40GB" in refused.value.message
    assert source.asked == []


def test_admins_visibility_shows_people_their_own_and_admins_everything(people):
    service, source = reports(people, visibility="admins")
    for scope in (UsageScope("team"), UsageScope("person", "alice"), UsageScope("name", "box-1")):
        with pytest.raises(CommandError, match="Only admins"):
            service.report("U0BOB2", UsageCommand(scope))
    assert source.asked == []
    assert service.report("U0BOB2", UsageCommand(UsageScope("person", "U0BOB2"))).report.title == "you"
    assert service.report("U0ADMIN", UsageCommand(UsageScope("team"))).team_view
    assert service.report(None, UsageCommand(UsageScope("team"))).team_view  # the host's admin at a terminal


def test_at_the_terminal_there_is_no_me(people):
    service, _ = reports(people)
    with pytest.raises(CommandError, match="no `me`"):
        service.report(None, UsageCommand(UsageScope("me")))


def test_the_home_tabs_week_is_read_once_per_few_minutes_and_the_team_only_where_visible(people):
    source = RecordingSource()
    clock = FakeClock(NOW)
    service = UsageReports(source, people, lambda: GPUS, clock, ZoneInfo("UTC"), frozenset({"U0ADMIN"}), "admins")

    assert service.recent_if_fresh("U0BOB") is None
    recent = service.recent("U0BOB")
    assert recent.mine.held_s == 3600.0 and recent.team is None  # not an admin
    assert source.asked == [(NOW - timedelta(days=7), NOW, UsageFilter(user_id="U0BOB"))]
    clock.advance(timedelta(minutes=4))
    assert service.recent_if_fresh("U0BOB") == recent
    assert service.recent("U0ADMIN").team is not None
    assert len(source.asked) == 3  # the admin's own, and the team's
    clock.advance(timedelta(minutes=2))
    assert service.recent_if_fresh("U0BOB") is None  # five minutes old: read again
