"""People by name where a mention cannot render (plain text, a terminal): names cached in memory and the store.

Looking a name up is the adapter's work (Slack's `users.info`); this decides when a name is worth looking
up and remembers the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from gpubot.core.clock import Clock
from gpubot.core.models import Person
from gpubot.core.ports import PeopleStore

# People rarely rename themselves; a day-old name is fresh enough, and a look-up a day per person is cheap.
NAME_MAX_AGE = timedelta(days=1)


class PeopleDirectory:
    """Display names by Slack user ID, read from memory first, then the store.

    Safe to share between threads: each cache entry is one dict assignment.
    """

    def __init__(self, store: PeopleStore, clock: Clock, max_age: timedelta = NAME_MAX_AGE) -> None:
        self._store = store
        self._clock = clock
        self._max_age = max_age
        self._known: dict[str, Person] = {}

    def names(self, user_ids: Iterable[str]) -> dict[str, str]:
        """The display names known for these users (stale ones too: better than an ID)."""
        wanted = set(user_ids)
        missing = [user_id for user_id in wanted if user_id not in self._known]
        if missing:
            self._known.update(self._store.people(missing))
        return {user_id: self._known[user_id].display_name for user_id in wanted if user_id in self._known}

    def is_fresh(self, user_id: str) -> bool:
        """True when memory holds a name younger than the maximum age: nothing to do, not even a query."""
        person = self._known.get(user_id)
        return person is not None and not self._is_stale(person)

    def needs_lookup(self, user_id: str) -> bool:
        """True when the user's name is unknown or older than the maximum age."""
        person = self._known.get(user_id)
        if person is None or self._is_stale(person):
            # Another process (a second daemon) may have looked it up meanwhile.
            person = self._store.people([user_id]).get(user_id)
            if person is not None:
                self._known[user_id] = person
        return person is None or self._is_stale(person)

    def remember(self, user_id: str, display_name: str) -> None:
        """Record a name just looked up."""
        person = Person(user_id, display_name, self._clock.now())
        self._store.save_person(person)
        self._known[user_id] = person

    def _is_stale(self, person: Person) -> bool:
        return self._clock.now() - person.updated_at >= self._max_age
