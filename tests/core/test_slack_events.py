"""`SlackEvents`: Home opens told from Slack's retries, old records pruned now and then, viewers of a day."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gpubot.core.slack_events import KEEP, MAX_EVENT_ID_CHARS, PRUNE_EVERY, SlackEvents
from tests.fakes import FakeClock, InMemoryClaimStore


class CountingStore(InMemoryClaimStore):
    def __init__(self) -> None:
        super().__init__()
        self.forgets = []

    def home_opened(self, opens, now, forget_before=None):
        if forget_before is not None:
            self.forgets.append(forget_before)
        return super().home_opened(opens, now, forget_before)


def test_a_retried_event_is_not_a_new_opening() -> None:
    events = SlackEvents(InMemoryClaimStore(), FakeClock())
    assert events.home_opened([("U1", "Ev1")]) == ["U1"]
    assert events.home_opened([("U1", "Ev1")]) == []
    assert events.home_opened([("U1", "Ev2")]) == ["U1"]


def test_whose_home_to_publish_names_each_person_once_in_order() -> None:
    events = SlackEvents(InMemoryClaimStore(), FakeClock())
    events.home_opened([("U_SEEN", "Ev0")])
    opens = [("U2", "Ev1"), ("U1", "Ev2"), ("U2", "Ev3"), ("U3", "Ev0"), ("U1", "Ev2")]
    assert events.home_opened(opens) == ["U2", "U1"]
    assert events.home_opened([]) == []


@pytest.mark.parametrize("event_id", [None, "", 42, ["Ev1"], "E" * (MAX_EVENT_ID_CHARS + 1)])
def test_an_event_id_that_cannot_be_kept_is_handled_every_time(event_id: object) -> None:
    events = SlackEvents(InMemoryClaimStore(), FakeClock())
    assert events.home_opened([("U1", event_id)]) == ["U1"]
    assert events.home_opened([("U1", event_id), ("U2", event_id)]) == ["U1", "U2"]


def test_old_records_are_pruned_with_the_first_opening_then_at_most_once_per_interval() -> None:
    store, clock = CountingStore(), FakeClock()
    events = SlackEvents(store, clock)
    start = clock.now()

    events.home_opened([("U1", "Ev1")])
    clock.advance(PRUNE_EVERY - timedelta(seconds=1))
    events.home_opened([("U1", "Ev2")])
    clock.advance(timedelta(seconds=1))
    events.home_opened([("U1", "Ev3")])

    assert store.forgets == [start - KEEP, start + PRUNE_EVERY - KEEP]


def test_viewers_are_those_who_opened_their_home_within_the_time_kept() -> None:
    store, clock = InMemoryClaimStore(), FakeClock()
    events = SlackEvents(store, clock)
    events.home_opened([("U_EARLY", "Ev1")])
    clock.advance(timedelta(hours=12))
    events.home_opened([("U_LATE", "Ev2")])
    assert events.home_viewers({"U_EARLY", "U_LATE", "U_NEVER"}) == {"U_EARLY", "U_LATE"}

    clock.advance(timedelta(hours=12, seconds=1))
    assert events.home_viewers({"U_EARLY", "U_LATE"}) == {"U_LATE"}
    assert events.home_viewers(set()) == frozenset()
