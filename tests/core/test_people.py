"""Names where mentions cannot render: looked up once, cached in memory and the store, refreshed daily."""

from datetime import timedelta

from gpubot.core.models import Person
from gpubot.core.people import PeopleDirectory
from tests.fakes import FakeClock, InMemoryClaimStore


class CountingStore(InMemoryClaimStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def people(self, user_ids):
        self.reads += 1
        return super().people(user_ids)


def test_a_name_is_looked_up_once_then_served_from_memory():
    store, clock = CountingStore(), FakeClock()
    directory = PeopleDirectory(store, clock)
    assert directory.needs_lookup("U0ALICE")
    directory.remember("U0ALICE", "alice")
    assert store.people(["U0ALICE"]) == {"U0ALICE": Person("U0ALICE", "alice", clock.now())}
    reads = store.reads
    assert not directory.needs_lookup("U0ALICE")
    assert directory.names(["U0ALICE"]) == {"U0ALICE": "alice"}
    assert store.reads == reads


def test_unknown_people_are_left_out_so_callers_fall_back_to_the_id():
    assert PeopleDirectory(InMemoryClaimStore(), FakeClock()).names(["U0BOB"]) == {}


def test_names_another_process_saved_are_read_from_the_store():
    store, clock = InMemoryClaimStore(), FakeClock()
    store.save_person(Person("U0BOB", "bob", clock.now()))
    directory = PeopleDirectory(store, clock)
    assert directory.names(["U0BOB", "U0CAROL"]) == {"U0BOB": "bob"}
    assert not directory.needs_lookup("U0BOB")


def test_a_name_older_than_a_day_is_looked_up_again_but_still_shown_meanwhile():
    store, clock = InMemoryClaimStore(), FakeClock()
    directory = PeopleDirectory(store, clock)
    directory.remember("U0ALICE", "alice")
    clock.advance(timedelta(hours=23))
    assert not directory.needs_lookup("U0ALICE")
    clock.advance(timedelta(hours=1))
    assert directory.needs_lookup("U0ALICE")
    assert directory.names(["U0ALICE"]) == {"U0ALICE": "alice"}
    directory.remember("U0ALICE", "Alice L.")
    assert not directory.needs_lookup("U0ALICE") and directory.names(["U0ALICE"]) == {"U0ALICE": "Alice L."}


def test_a_fresher_name_from_another_process_saves_a_lookup():
    store, clock = InMemoryClaimStore(), FakeClock()
    directory = PeopleDirectory(store, clock)
    directory.remember("U0ALICE", "alice")
    clock.advance(timedelta(days=2))
    store.save_person(Person("U0ALICE", "alice2", clock.now()))  # a second daemon refreshed it
    assert not directory.needs_lookup("U0ALICE")
    assert directory.names(["U0ALICE"]) == {"U0ALICE": "alice2"}
