"""Contract tests for `ClaimStore`: the same tests run on InMemoryClaimStore, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine

from gpubot.core.errors import AlreadyHeld, ClaimChanged, ClaimNotActive
from gpubot.core.models import (
    Claim,
    ClaimStatus,
    EventKind,
    Gpu,
    NewClaim,
    Notice,
    NoticeKind,
    Person,
)
from gpubot.core.ports import ClaimStore, PeopleStore
from gpubot.storage.claim_store import SqlClaimStore
from tests.audit import audit_log
from tests.fakes import ClaimEvent
from tests.notices import pending_notices
from tests.storage.conftest import needs_postgres

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
HOST = "node1"
GPU0 = Gpu(HOST, "GPU-0000", 0, "NVIDIA H100")
GPU1 = Gpu(HOST, "GPU-1111", 1, "NVIDIA H100")
GPU2 = Gpu(HOST, "GPU-2222", 2, "NVIDIA H100")


def new_claim(gpu: Gpu = GPU0, user: str = "U_ALICE", ends_at: datetime = NOW + HOUR) -> NewClaim:
    return NewClaim(gpu=gpu, user_id=user, purpose="training", started_at=NOW, ends_at=ends_at)


def claim_one(store: ClaimStore, gpu: Gpu = GPU0, user: str = "U_ALICE", ends_at: datetime = NOW + HOUR) -> Claim:
    [claim] = store.create_claims([new_claim(gpu, user, ends_at)])
    return claim


def kinds(events: list[ClaimEvent]) -> list[EventKind]:
    return [event.kind for event in events]


# -- create_claims ------------------------------------------------------------------------------------


def test_create_claims_returns_active_claims_with_ids_and_claimed_events(store: ClaimStore) -> None:
    claims = store.create_claims([new_claim(GPU0), new_claim(GPU1)])

    assert [c.gpu_index for c in claims] == [0, 1]
    assert len({c.id for c in claims}) == 2
    first = claims[0]
    assert first == Claim(
        id=first.id,
        host=HOST,
        gpu_uuid="GPU-0000",
        gpu_index=0,
        user_id="U_ALICE",
        purpose="training",
        started_at=NOW,
        ends_at=NOW + HOUR,
        status=ClaimStatus.ACTIVE,
    )
    assert store.get_claim(first.id) == first
    assert store.active_claims() == claims
    assert audit_log(store, first.id) == [ClaimEvent(first.id, EventKind.CLAIMED, "U_ALICE", NOW)]


def test_conflict_names_current_holder_and_writes_nothing(store: ClaimStore) -> None:
    held = claim_one(store, GPU1, "U_ALICE", NOW + 2 * HOUR)
    events_before = audit_log(store)

    with pytest.raises(AlreadyHeld) as refused:
        # GPU 0 is free, GPU 1 is not: all or nothing means GPU 0 is not claimed either.
        store.create_claims([new_claim(GPU0, "U_BOB"), new_claim(GPU1, "U_BOB")])

    assert (refused.value.gpu_label, refused.value.holder_id) == ("1", "U_ALICE")
    assert refused.value.ends_at == NOW + 2 * HOUR
    assert store.active_claims() == [held]
    assert audit_log(store) == events_before


def test_conflict_names_the_holder_even_when_they_claimed_under_another_index(store: ClaimStore) -> None:
    claim_one(store, GPU0, "U_ALICE")
    renumbered = Gpu(HOST, GPU0.uuid, 5)

    with pytest.raises(AlreadyHeld) as refused:
        store.create_claims([new_claim(renumbered, "U_BOB")])

    assert (refused.value.gpu_label, refused.value.holder_id) == ("5", "U_ALICE")


def test_holder_claiming_again_is_refused_too(store: ClaimStore) -> None:
    claim_one(store, GPU0, "U_ALICE")

    with pytest.raises(AlreadyHeld) as refused:
        claim_one(store, GPU0, "U_ALICE")

    assert refused.value.holder_id == "U_ALICE"


def test_same_uuid_on_another_host_is_another_gpu(store: ClaimStore) -> None:
    claim_one(store, GPU0, "U_ALICE")
    other = claim_one(store, Gpu("node2", GPU0.uuid, 0), "U_BOB")

    assert [c.user_id for c in store.active_claims()] == ["U_ALICE", "U_BOB"]
    assert [c.id for c in store.active_claims("node2")] == [other.id]


def test_gpu_can_be_claimed_again_once_its_claim_ended(store: ClaimStore) -> None:
    first = claim_one(store, GPU0, "U_ALICE")
    store.end_claim(first.id, ClaimStatus.RELEASED, EventKind.RELEASED, "U_ALICE", NOW)
    second = claim_one(store, GPU0, "U_BOB")

    assert second.id != first.id
    with pytest.raises(AlreadyHeld) as refused:
        claim_one(store, GPU0, "U_CAROL")
    assert refused.value.holder_id == "U_BOB"


def test_create_nothing(store: ClaimStore) -> None:
    assert store.create_claims([]) == []
    assert audit_log(store) == []


def test_two_claims_of_one_gpu_in_one_batch_are_a_caller_error(store: ClaimStore) -> None:
    with pytest.raises(ValueError):
        store.create_claims([new_claim(GPU0), new_claim(GPU0, "U_BOB")])
    assert store.active_claims() == []


# -- end_claim ----------------------------------------------------------------------------------------


def test_release_ends_claim_with_event(store: ClaimStore) -> None:
    claim = claim_one(store)

    ended = store.end_claim(claim.id, ClaimStatus.RELEASED, EventKind.RELEASED, "U_ALICE", NOW + HOUR / 2)

    assert ended.status is ClaimStatus.RELEASED
    assert (ended.ended_at, ended.ended_by) == (NOW + HOUR / 2, "U_ALICE")
    assert store.get_claim(claim.id) == ended
    assert store.active_claims() == []
    assert kinds(audit_log(store, claim.id)) == [EventKind.CLAIMED, EventKind.RELEASED]
    assert pending_notices(store, NOW + HOUR) == []


def test_second_end_raises_and_writes_nothing(store: ClaimStore) -> None:
    claim = claim_one(store)
    ended = store.end_claim(claim.id, ClaimStatus.EXPIRED, EventKind.EXPIRED, None, NOW + HOUR)
    events_before = audit_log(store)
    notice = Notice(NoticeKind.FORCE_RELEASED, "U_ALICE", claim.id, "U_ADMIN")

    with pytest.raises(ClaimNotActive) as refused:
        store.end_claim(claim.id, ClaimStatus.RELEASED, EventKind.FORCE_RELEASED, "U_ADMIN", NOW, notice)

    assert refused.value.claim_id == claim.id
    assert store.get_claim(claim.id) == ended
    assert audit_log(store) == events_before
    assert pending_notices(store, NOW + 2 * HOUR) == []


def test_ending_unknown_claim_raises(store: ClaimStore) -> None:
    with pytest.raises(ClaimNotActive):
        store.end_claim(999, ClaimStatus.RELEASED, EventKind.RELEASED, "U_ALICE", NOW)


def test_ending_into_active_is_a_caller_error(store: ClaimStore) -> None:
    claim = claim_one(store)
    with pytest.raises(ValueError):
        store.end_claim(claim.id, ClaimStatus.ACTIVE, EventKind.RELEASED, "U_ALICE", NOW)
    assert store.get_claim(claim.id) == claim


def test_a_claim_confirmed_by_dm_queues_one_notice_per_claim_with_the_claims(store: ClaimStore) -> None:
    claims = store.create_claims([new_claim(GPU0), new_claim(GPU1)], confirm_by_dm=True)

    items = pending_notices(store, NOW)
    assert [item.notice for item in items] == [Notice(NoticeKind.CLAIMED, "U_ALICE", claim.id) for claim in claims]
    assert [item.claim for item in items] == claims


def test_a_refused_claim_queues_no_confirmation(store: ClaimStore) -> None:
    claim_one(store, GPU1, "U_BOB")

    with pytest.raises(AlreadyHeld):
        store.create_claims([new_claim(GPU0), new_claim(GPU1)], confirm_by_dm=True)

    assert pending_notices(store, NOW) == []


def test_force_release_queues_notice_with_the_change(store: ClaimStore) -> None:
    claim = claim_one(store)
    notice = Notice(NoticeKind.FORCE_RELEASED, "U_ALICE", claim.id, "U_ADMIN")

    ended = store.end_claim(claim.id, ClaimStatus.RELEASED, EventKind.FORCE_RELEASED, "U_ADMIN", NOW, notice)

    [item] = pending_notices(store, NOW)
    assert item.notice == notice
    assert item.claim == ended  # the claim as it is now: released
    assert item.attempts == 0
    assert kinds(audit_log(store, claim.id)) == [EventKind.CLAIMED, EventKind.FORCE_RELEASED]
    assert audit_log(store, claim.id)[-1].actor_id == "U_ADMIN"


# -- extend_claim -------------------------------------------------------------------------------------


def test_extend_moves_end_clears_warning_and_records_from_and_to(store: ClaimStore) -> None:
    claim = claim_one(store, ends_at=NOW + HOUR)
    assert store.mark_warned(claim.id, NOW + HOUR / 2, Notice(NoticeKind.EXPIRY_WARNING, "U_ALICE", claim.id))

    extended = store.extend_claim(claim.id, NOW + 3 * HOUR, "U_ALICE", NOW + HOUR / 2)

    assert extended.ends_at == NOW + 3 * HOUR
    assert extended.warned_at is None
    assert store.get_claim(claim.id) == extended
    event = audit_log(store, claim.id)[-1]
    assert event == ClaimEvent(
        claim.id,
        EventKind.EXTENDED,
        "U_ALICE",
        NOW + HOUR / 2,
        {"from": "2026-11-24T10:00:00+00:00", "to": "2026-11-24T12:00:00+00:00"},
    )
    # Unwarned again, so it is warned again before its new end.
    assert store.claims_to_warn(NOW + 2.5 * HOUR, HOUR) == [extended]


def test_extending_an_ended_claim_raises_and_writes_nothing(store: ClaimStore) -> None:
    claim = claim_one(store)
    ended = store.end_claim(claim.id, ClaimStatus.RELEASED, EventKind.RELEASED, "U_ALICE", NOW)
    events_before = audit_log(store)

    with pytest.raises(ClaimNotActive):
        store.extend_claim(claim.id, NOW + 5 * HOUR, "U_ALICE", NOW)
    with pytest.raises(ClaimNotActive):
        store.extend_claim(12345, NOW + 5 * HOUR, "U_ALICE", NOW)

    assert store.get_claim(claim.id) == ended
    assert audit_log(store) == events_before


# -- warnings -----------------------------------------------------------------------------------------


def test_extend_with_an_expected_end_changes_nothing_once_it_moved(store: ClaimStore) -> None:
    claim = claim_one(store)
    once = store.extend_claim(claim.id, NOW + 2 * HOUR, "U_ALICE", NOW, expected_ends_at=claim.ends_at)
    assert once.ends_at == NOW + 2 * HOUR

    # The same button pressed again still expects the old end: refused, nothing written.
    with pytest.raises(ClaimChanged) as changed:
        store.extend_claim(claim.id, NOW + 3 * HOUR, "U_ALICE", NOW, expected_ends_at=claim.ends_at)
    assert changed.value.ends_at == NOW + 2 * HOUR
    assert store.get_claim(claim.id).ends_at == NOW + 2 * HOUR
    assert kinds(audit_log(store, claim.id)) == [EventKind.CLAIMED, EventKind.EXTENDED]


def test_claims_to_warn_window_edges(store: ClaimStore) -> None:
    window = timedelta(minutes=10)
    ended_now = claim_one(store, Gpu(HOST, "A", 0), ends_at=NOW)
    just_inside = claim_one(store, Gpu(HOST, "B", 1), ends_at=NOW + timedelta(seconds=1))
    at_boundary = claim_one(store, Gpu(HOST, "C", 2), ends_at=NOW + window)
    claim_one(store, Gpu(HOST, "D", 3), ends_at=NOW + window + timedelta(microseconds=1))
    warned = claim_one(store, Gpu(HOST, "E", 4), ends_at=NOW + timedelta(minutes=5))
    released = claim_one(store, Gpu(HOST, "F", 5), ends_at=NOW + timedelta(minutes=5))
    store.mark_warned(warned.id, NOW - HOUR, Notice(NoticeKind.EXPIRY_WARNING, "U_ALICE", warned.id))
    store.end_claim(released.id, ClaimStatus.RELEASED, EventKind.RELEASED, "U_ALICE", NOW - HOUR)

    due = store.claims_to_warn(NOW, window)

    assert [c.id for c in due] == [just_inside.id, at_boundary.id]
    assert [c.id for c in store.claims_past_end(NOW)] == [ended_now.id]


def test_mark_warned_only_once(store: ClaimStore) -> None:
    claim = claim_one(store)
    notice = Notice(NoticeKind.EXPIRY_WARNING, "U_ALICE", claim.id)

    assert store.mark_warned(claim.id, NOW + HOUR / 2, notice) is True
    assert store.mark_warned(claim.id, NOW + HOUR / 2, notice) is False

    assert store.get_claim(claim.id).warned_at == NOW + HOUR / 2  # type: ignore[union-attr]
    assert kinds(audit_log(store, claim.id)) == [EventKind.CLAIMED, EventKind.WARNED]
    assert [item.notice for item in pending_notices(store, NOW + HOUR)] == [notice]
    assert store.claims_to_warn(NOW + HOUR / 2, HOUR) == []


def test_mark_warned_on_ended_or_unknown_claim_is_false(store: ClaimStore) -> None:
    claim = claim_one(store)
    store.end_claim(claim.id, ClaimStatus.RELEASED, EventKind.RELEASED, "U_ALICE", NOW)

    assert store.mark_warned(claim.id, NOW, Notice(NoticeKind.EXPIRY_WARNING, "U_ALICE", claim.id)) is False
    assert store.mark_warned(777, NOW, Notice(NoticeKind.EXPIRY_WARNING, "U_ALICE", claim.id)) is False
    assert store.get_claim(claim.id).warned_at is None  # type: ignore[union-attr]
    assert pending_notices(store, NOW) == []


def test_claims_past_end(store: ClaimStore) -> None:
    long_past = claim_one(store, GPU0, ends_at=NOW - HOUR)
    exactly_now = claim_one(store, GPU1, ends_at=NOW)
    claim_one(store, GPU2, ends_at=NOW + timedelta(microseconds=1))
    gone = claim_one(store, Gpu(HOST, "GPU-3333", 3), ends_at=NOW - HOUR)
    store.end_claim(gone.id, ClaimStatus.EXPIRED, EventKind.EXPIRED, None, NOW - HOUR)

    assert [c.id for c in store.claims_past_end(NOW)] == [long_past.id, exactly_now.id]


# -- outbox -------------------------------------------------------------------------------------------


def _queue_warning(store: ClaimStore, gpu: Gpu, at: datetime) -> Notice:
    claim = claim_one(store, gpu, ends_at=NOW + 3 * HOUR)
    notice = Notice(NoticeKind.EXPIRY_WARNING, "U_ALICE", claim.id)
    assert store.mark_warned(claim.id, at, notice)
    return notice


def test_pending_notices_are_due_ones_oldest_first_up_to_limit(store: ClaimStore) -> None:
    second = _queue_warning(store, GPU0, NOW + timedelta(minutes=2))
    first = _queue_warning(store, GPU1, NOW + timedelta(minutes=1))
    later = _queue_warning(store, GPU2, NOW + timedelta(minutes=30))

    due = pending_notices(store, NOW + timedelta(minutes=2))

    assert [item.notice for item in due] == [first, second]
    assert [item.notice for item in pending_notices(store, NOW + HOUR, limit=2)] == [first, second]
    assert [item.notice for item in pending_notices(store, NOW + HOUR)] == [first, second, later]
    assert pending_notices(store, NOW) == []


def test_sent_notice_is_no_longer_pending(store: ClaimStore) -> None:
    notice = _queue_warning(store, GPU0, NOW)
    [item] = pending_notices(store, NOW)

    store.mark_notice_sent(item.id, NOW + timedelta(seconds=1))
    store.mark_notice_sent(item.id, NOW + timedelta(seconds=2))  # a retry is harmless
    store.defer_notice(item.id, NOW + HOUR, "late failure report")  # so is a late deferral

    assert item.notice == notice
    assert pending_notices(store, NOW + 2 * HOUR) == []


def test_deferred_notice_waits_and_counts_attempts(store: ClaimStore) -> None:
    _queue_warning(store, GPU0, NOW)
    [item] = pending_notices(store, NOW)

    store.defer_notice(item.id, NOW + timedelta(minutes=1), "ratelimited")
    assert pending_notices(store, NOW + timedelta(seconds=59)) == []
    [retry] = pending_notices(store, NOW + timedelta(minutes=1))
    store.defer_notice(item.id, NOW + timedelta(minutes=5), "x" * 10_000)
    [again] = pending_notices(store, NOW + timedelta(minutes=5))

    assert (retry.id, retry.attempts) == (item.id, 1)
    assert again.attempts == 2


def test_pending_notice_carries_the_claim_as_it_is_now(store: ClaimStore) -> None:
    notice = _queue_warning(store, GPU0, NOW)
    extended = store.extend_claim(notice.claim_id, NOW + 5 * HOUR, "U_ALICE", NOW + timedelta(seconds=5))

    [item] = pending_notices(store, NOW + timedelta(seconds=5))

    assert item.claim == extended


# -- GPUs ---------------------------------------------------------------------------------------------


def test_sync_gpus_lists_present_gpus_by_index(store: ClaimStore) -> None:
    store.sync_gpus(HOST, [GPU1, GPU0], NOW)
    store.sync_gpus("node2", [Gpu("node2", "GPU-9999", 0)], NOW)

    assert store.list_gpus(HOST) == [GPU0, GPU1]
    assert store.list_gpus("node2") == [Gpu("node2", "GPU-9999", 0)]
    assert store.list_gpus("nowhere") == []


def test_sync_gpus_updates_by_uuid_and_hides_missing_ones(store: ClaimStore) -> None:
    store.sync_gpus(HOST, [GPU0, GPU1, GPU2], NOW)
    store.sync_gpus("node2", [Gpu("node2", "GPU-9999", 0)], NOW)

    # After a reboot GPU-2222 is gone and the others were renumbered (and one renamed).
    moved0 = Gpu(HOST, "GPU-0000", 1, "NVIDIA H100 80GB HBM3")
    moved1 = Gpu(HOST, "GPU-1111", 0, "NVIDIA H100")
    store.sync_gpus(HOST, [moved0, moved1], NOW + HOUR)
    assert store.list_gpus(HOST) == [moved1, moved0]

    store.sync_gpus(HOST, [moved0, moved1, GPU2], NOW + 2 * HOUR)  # it came back
    assert store.list_gpus(HOST) == [moved1, moved0, GPU2]

    store.sync_gpus(HOST, [], NOW + 3 * HOUR)
    assert store.list_gpus(HOST) == []
    assert store.list_gpus("node2") == [Gpu("node2", "GPU-9999", 0)]


def test_sync_gpus_refuses_another_hosts_gpu_or_a_repeated_uuid(store: ClaimStore) -> None:
    with pytest.raises(ValueError):
        store.sync_gpus(HOST, [Gpu("node2", "GPU-9999", 0)], NOW)
    with pytest.raises(ValueError):
        store.sync_gpus(HOST, [GPU0, Gpu(HOST, GPU0.uuid, 3)], NOW)
    assert store.list_gpus(HOST) == []


# -- listing and the audit log ------------------------------------------------------------------------


def test_active_claims_are_ordered_by_host_then_index(store: ClaimStore) -> None:
    c2 = claim_one(store, GPU2)
    b0 = claim_one(store, Gpu("node0", "GPU-B", 0))
    c0 = claim_one(store, GPU0)

    assert store.active_claims() == [b0, c0, c2]
    assert store.active_claims(HOST) == [c0, c2]
    assert store.active_claims("nowhere") == []
    assert store.get_claim(424242) is None


def test_events_of_all_claims_in_the_order_written(store: ClaimStore) -> None:
    a = claim_one(store, GPU0)
    b = claim_one(store, GPU1, "U_BOB")
    store.end_claim(a.id, ClaimStatus.RELEASED, EventKind.RELEASED, "U_ALICE", NOW)
    store.extend_claim(b.id, NOW + 2 * HOUR, "U_BOB", NOW)

    events = audit_log(store)

    assert [(e.claim_id, e.kind) for e in events] == [
        (a.id, EventKind.CLAIMED),
        (b.id, EventKind.CLAIMED),
        (a.id, EventKind.RELEASED),
        (b.id, EventKind.EXTENDED),
    ]
    assert events[0].detail == {}
    assert audit_log(store, b.id) == [events[1], events[3]]


# -- time handling ------------------------------------------------------------------------------------


def test_times_come_back_as_aware_utc(store: ClaimStore) -> None:
    paris = timezone(timedelta(hours=1))
    started = datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=paris)  # 09:00:00.123456 UTC
    [claim] = store.create_claims([NewClaim(GPU0, "U_ALICE", "p", started_at=started, ends_at=started + HOUR)])
    store.mark_warned(claim.id, started + HOUR / 2, Notice(NoticeKind.EXPIRY_WARNING, "U_ALICE", claim.id))

    stored = store.get_claim(claim.id)

    assert stored is not None
    for value in (stored.started_at, stored.ends_at, stored.warned_at, audit_log(store, claim.id)[0].at):
        assert value is not None
        assert value.tzinfo == timezone.utc
    assert stored.started_at == started
    assert stored.started_at.hour == 9
    assert stored.started_at.microsecond == 123456
    # Comparisons in the database use the instant, not the wall-clock text.
    assert store.claims_past_end(started + HOUR - timedelta(microseconds=1)) == []
    assert store.claims_past_end((started + HOUR).astimezone(timezone(timedelta(hours=-8)))) == [stored]


def test_naive_times_are_refused(store: ClaimStore) -> None:
    naive = datetime(2026, 11, 24, 9, 0)

    with pytest.raises(ValueError):
        store.create_claims([NewClaim(GPU0, "U_ALICE", "p", started_at=naive, ends_at=NOW + HOUR)])
    with pytest.raises(ValueError):
        store.claims_past_end(naive)
    with pytest.raises(ValueError):
        store.sync_gpus(HOST, [GPU0], naive)
    assert store.active_claims() == []


def test_leased_notices_are_skipped_by_a_second_sender_until_the_lease_ends(store: ClaimStore) -> None:
    claim = claim_one(store)
    store.end_claim(
        claim.id,
        ClaimStatus.RELEASED,
        EventKind.FORCE_RELEASED,
        "U_ADMIN",
        NOW,
        Notice(NoticeKind.FORCE_RELEASED, "U_ALICE", claim.id, "U_ADMIN"),
    )
    first = store.lease_notices(NOW, NOW + timedelta(minutes=1))
    assert [item.notice.user_id for item in first] == ["U_ALICE"]
    assert store.lease_notices(NOW, NOW + timedelta(minutes=1)) == []
    # A sender that died holding it: the notice comes back once its lease is over.
    again = store.lease_notices(NOW + timedelta(minutes=1), NOW + timedelta(minutes=2))
    assert [item.id for item in again] == [first[0].id]
    store.mark_notice_sent(first[0].id, NOW + timedelta(minutes=1))
    assert store.lease_notices(NOW + timedelta(hours=1), NOW + timedelta(hours=2)) == []


def released_with_notice(store: ClaimStore) -> Claim:
    claim = claim_one(store)
    store.end_claim(
        claim.id,
        ClaimStatus.RELEASED,
        EventKind.FORCE_RELEASED,
        "U_ADMIN",
        NOW,
        Notice(NoticeKind.FORCE_RELEASED, "U_ALICE", claim.id, "U_ADMIN"),
    )
    return claim


def test_only_the_lease_that_holds_a_notice_settles_it(store: ClaimStore) -> None:
    released_with_notice(store)
    (old,) = store.lease_notices(NOW, NOW + timedelta(seconds=20))
    assert old.lease and old.leased_until == NOW + timedelta(seconds=20) and old.unsettled_since is None
    assert old.created_at == NOW
    # Its sender stalled past the lease; another took it over.
    (new,) = store.lease_notices(NOW + timedelta(seconds=20), NOW + timedelta(seconds=40))
    assert new.lease != old.lease
    # The first lease's sender died or stalled after a send began: the new holder is told since when.
    assert new.unsettled_since == NOW
    assert not store.defer_notice(old.id, NOW + HOUR, "late", lease=old.lease)
    assert not store.abandon_notice(old.id, NOW, "late", lease=old.lease)
    assert pending_notices(store, NOW + timedelta(seconds=40)) != []  # still the new holder's, due again then
    assert store.defer_notice(new.id, NOW + timedelta(minutes=1), "timed out", lease=new.lease, unsettled_since=NOW)
    (third,) = store.lease_notices(NOW + timedelta(minutes=1), NOW + timedelta(minutes=2))
    assert third.unsettled_since == NOW and third.attempts == 1
    # A definite failure (Slack said no) clears it; a postponement counts no attempt.
    assert store.defer_notice(
        third.id, NOW + timedelta(minutes=2), "ratelimited", lease=third.lease, count_attempt=False
    )
    (fourth,) = store.lease_notices(NOW + timedelta(minutes=2), NOW + timedelta(minutes=3))
    assert fourth.unsettled_since is None and fourth.attempts == 1
    store.mark_notice_sent(fourth.id, NOW + timedelta(minutes=2))
    assert not store.defer_notice(fourth.id, NOW + HOUR, "late", lease=fourth.lease)


def test_an_abandoned_notice_is_never_due_again(store: ClaimStore) -> None:
    released_with_notice(store)
    (item,) = store.lease_notices(NOW, NOW + timedelta(seconds=20))
    assert store.abandon_notice(item.id, NOW, "user_not_found", lease=item.lease)
    assert pending_notices(store, NOW + HOUR) == []
    assert store.lease_notices(NOW + HOUR, NOW + 2 * HOUR) == []
    assert not store.abandon_notice(item.id, NOW, "again")
    store.mark_notice_sent(item.id, NOW)  # harmless, changes nothing
    assert store.lease_notices(NOW + HOUR, NOW + 2 * HOUR) == []


# -- SqlClaimStore's notice hook --------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_postgres)])
def sql_engine(request: pytest.FixtureRequest) -> Engine:
    return request.getfixturevalue(f"{request.param}_engine")


def test_on_notice_queued_runs_after_the_commit_of_a_queued_notice_and_only_then(sql_engine: Engine) -> None:
    reader = SqlClaimStore(sql_engine)
    # What another connection can see when the hook runs: the notice must already be committed.
    seen: list[list[NoticeKind]] = []
    store = SqlClaimStore(
        sql_engine, on_notice_queued=lambda: seen.append([item.notice.kind for item in pending_notices(reader, NOW)])
    )
    claim = claim_one(store)
    other = claim_one(store, GPU1, "U_BOB")
    store.extend_claim(claim.id, NOW + 2 * HOUR, "U_ALICE", NOW)
    store.end_claim(other.id, ClaimStatus.RELEASED, EventKind.RELEASED, "U_BOB", NOW)
    assert seen == []  # claims, extensions and releases of one's own owe nobody a DM
    store.create_claims([new_claim(GPU2, "U_CAROL")], confirm_by_dm=True)
    assert seen == [[NoticeKind.CLAIMED]]
    seen.clear()
    [confirmation] = pending_notices(reader, NOW)
    store.mark_notice_sent(confirmation.id, NOW)

    assert store.mark_warned(claim.id, NOW, Notice(NoticeKind.EXPIRY_WARNING, "U_ALICE", claim.id))
    assert seen == [[NoticeKind.EXPIRY_WARNING]]
    assert not store.mark_warned(claim.id, NOW, Notice(NoticeKind.EXPIRY_WARNING, "U_ALICE", claim.id))
    assert len(seen) == 1  # nothing queued, no call

    store.end_claim(
        claim.id, ClaimStatus.EXPIRED, EventKind.EXPIRED, None, NOW, Notice(NoticeKind.EXPIRED, "U_ALICE", claim.id)
    )
    assert seen[-1] == [NoticeKind.EXPIRY_WARNING, NoticeKind.EXPIRED]


# -- people (issue 11, point 13) ----------------------------------------------------------------------


def test_people_are_saved_replaced_and_read_back_by_id(store: PeopleStore) -> None:
    assert store.people(["U_ALICE"]) == {}
    assert store.people([]) == {}
    store.save_person(Person("U_ALICE", "alice", NOW))
    store.save_person(Person("U_BOB", "bob", NOW))
    later = NOW + timedelta(days=2)
    store.save_person(Person("U_ALICE", "Alice Liddell", later.astimezone(timezone(timedelta(hours=1)))))

    people = store.people(["U_ALICE", "U_BOB", "U_NOBODY"])

    assert people == {"U_ALICE": Person("U_ALICE", "Alice Liddell", later), "U_BOB": Person("U_BOB", "bob", NOW)}
    assert people["U_ALICE"].updated_at.tzinfo == timezone.utc


def test_a_person_with_a_naive_time_is_refused(store: PeopleStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.save_person(Person("U_ALICE", "alice", NOW.replace(tzinfo=None)))
