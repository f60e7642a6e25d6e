"""A hypothesis state machine over the claim rules: claim, release, extend, expire, advance time.

Invariants: at most one active claim per GPU; after a tick no active claim is past its end; a claim is
warned at most once per end time (an extension earns one more warning).
"""

import contextlib
from collections import Counter
from datetime import timedelta

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gpubot.core.errors import GpubotError
from gpubot.core.models import ClaimStatus, EventKind, GpuSample, HostSample, NoticeKind
from gpubot.core.policy import ClaimPolicy
from gpubot.core.selection import GpuSelection
from gpubot.core.service import ClaimService
from tests.audit import audit_log
from tests.fakes import FakeClock, InMemoryClaimStore

GPUS = 3
USERS = st.sampled_from(["U1", "U2", "U3"])
INDEX = st.integers(0, GPUS - 1)
MINUTES = st.integers(1, 13 * 60)
FAR_FUTURE = timedelta(days=3650)


class ClaimRules(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.store = InMemoryClaimStore()
        self.service = ClaimService(
            self.store, self.clock, ClaimPolicy(admins=frozenset({"U3"}), warn_before=timedelta(minutes=15)), "box"
        )
        self.service.sync_inventory(HostSample("box", None, tuple(GpuSample(i, f"GPU-{i}") for i in range(GPUS))))
        self.ticked = True

    @rule(user=USERS, index=INDEX, minutes=MINUTES)
    def claim(self, user, index, minutes):
        with contextlib.suppress(GpubotError):
            self.service.claim(user, GpuSelection((str(index),)), "job", timedelta(minutes=minutes))
        self.ticked = False

    @rule(user=USERS, minutes=MINUTES)
    def claim_any(self, user, minutes):
        with contextlib.suppress(GpubotError):
            self.service.claim(user, GpuSelection(any_free=True), "job", timedelta(minutes=minutes))
        self.ticked = False

    @rule(user=USERS, index=INDEX)
    def release(self, user, index):
        with contextlib.suppress(GpubotError):
            self.service.release(user, GpuSelection((str(index),)))
        self.ticked = False

    @rule(user=USERS, index=INDEX, minutes=MINUTES)
    def extend(self, user, index, minutes):
        with contextlib.suppress(GpubotError):
            self.service.extend(user, GpuSelection((str(index),)), timedelta(minutes=minutes))
        self.ticked = False

    @rule(user=USERS, data=st.data())
    def press_a_stale_or_fresh_button(self, user, data):
        claims = self.store.active_claims("box")
        if not claims:
            return
        claim = data.draw(st.sampled_from(claims))
        try:
            self.service.extend_claim(user, claim.id, timedelta(hours=1), expected_ends_at=claim.ends_at)
            self.service.extend_claim(user, claim.id, timedelta(hours=1), expected_ends_at=claim.ends_at)
        except GpubotError:
            pass
        self.ticked = False

    @rule(minutes=st.integers(0, 16 * 60))
    def advance(self, minutes):
        self.clock.advance(timedelta(minutes=minutes))
        self.ticked = False

    @rule()
    def tick(self):
        self.service.process_due()
        self.ticked = True

    @invariant()
    def one_active_claim_per_gpu(self):
        held = Counter(claim.gpu_uuid for claim in self.store.active_claims("box"))
        assert all(count == 1 for count in held.values())

    @precondition(lambda self: self.ticked)
    @invariant()
    def nothing_past_its_end_stays_active_after_a_tick(self):
        assert all(claim.ends_at > self.clock.now() for claim in self.store.active_claims("box"))

    @invariant()
    def warned_at_most_once_per_end_time(self):
        warnings = Counter(
            item.claim.id
            for item in self.store.pending_notices(self.clock.now() + FAR_FUTURE, limit=10_000)
            if item.notice.kind is NoticeKind.EXPIRY_WARNING
        )
        extensions = Counter(e.claim_id for e in audit_log(self.store) if e.kind is EventKind.EXTENDED)
        for claim_id, count in warnings.items():
            assert count <= 1 + extensions[claim_id]

    @invariant()
    def ended_claims_stay_ended(self):
        for event in audit_log(self.store):
            if event.kind in (EventKind.RELEASED, EventKind.EXPIRED, EventKind.FORCE_RELEASED):
                assert self.store.get_claim(event.claim_id).status is not ClaimStatus.ACTIVE


ClaimRules.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestClaimRules = ClaimRules.TestCase
