"""The claim rules: who may claim, release and extend which GPU, for how long.

`ClaimService` takes a clock and a store; it never reads the wall clock, Slack, SQL or NVML itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gpubot.core.clock import Clock
from gpubot.core.dashboard import Dashboard, HomeState, dashboard_rows
from gpubot.core.durations import format_duration
from gpubot.core.errors import (
    AlreadyHeld,
    AlreadyYours,
    ClaimNotActive,
    ClaimRefused,
    GpuNotResponding,
    GpuUnreadable,
    NoFreeGpu,
    NotClaimed,
    NotHolder,
    SelectionOverlaps,
    UnknownGpu,
)
from gpubot.core.load import NO_TELEMETRY as _NO_TELEMETRY
from gpubot.core.load import Availability, GpuUse, gpu_use
from gpubot.core.mig import CudaDevices, conflicting_claim, cuda_devices, mig_cards, overlap
from gpubot.core.models import (
    Claim,
    ClaimStatus,
    EventKind,
    Gpu,
    HostSample,
    NewClaim,
    Notice,
    NoticeKind,
)
from gpubot.core.policy import ClaimPolicy, Purpose
from gpubot.core.ports import ClaimStore
from gpubot.core.selection import GpuSelection


@dataclass(frozen=True)
class DueReport:
    """What one scheduler tick did."""

    expired: tuple[Claim, ...] = ()
    warned: tuple[Claim, ...] = ()


@dataclass(frozen=True)
class ClaimOutcome:
    """The claims just made, and what the claimer should know about them."""

    claims: tuple[Claim, ...]
    # Claimed anyway, but worth knowing: e.g. someone's unclaimed job is running on the GPU.
    warnings: tuple[str, ...] = ()
    # What CUDA_VISIBLE_DEVICES takes; None: work it out from the claims alone (no slices of whole MIG cards).
    devices: CudaDevices | None = None

    @property
    def cuda_devices(self) -> CudaDevices:
        """What CUDA_VISIBLE_DEVICES takes to put these claims to use."""
        return self.devices if self.devices is not None else cuda_devices(self.claims, ())


@dataclass(frozen=True)
class ReleaseOutcome:
    """The claims just ended: all of them, and those of them an admin ended for someone else."""

    released: tuple[Claim, ...]
    # Claims of other people ended by an admin; their holders get a DM.
    forced: tuple[Claim, ...]


@dataclass(frozen=True)
class ExtendOutcome:
    """The claims just extended, with their new ends, as of `now`."""

    claims: tuple[Claim, ...]
    # True when the maximum duration (counted from now) cut an extension short.
    capped: bool
    now: datetime


class ClaimService:
    """Claim, release and extend GPUs on one host, under a `ClaimPolicy`."""

    def __init__(self, store: ClaimStore, clock: Clock, policy: ClaimPolicy, host: str) -> None:
        self._store = store
        self._clock = clock
        self.policy = policy
        self.host = host
        # How each GPU of the latest sample is used: every view between two samples asks again.
        self._uses_of_last: tuple[HostSample, dict[str, GpuUse]] | None = None

    def sync_inventory(self, sample: HostSample) -> None:
        """Record the GPUs telemetry found, so claims can name them."""
        gpus = [
            Gpu(self.host, gpu.uuid, gpu.index, gpu.name, gpu.mig_index, gpu.parent_uuid, gpu.mig_profile)
            for gpu in sample.gpus
        ]
        self._store.sync_gpus(self.host, gpus, self._clock.now())

    def dashboard(self, sample: HostSample | None) -> Dashboard:
        """Every GPU with its claim (one past its end counts as free) and its latest sample."""
        now = self._clock.now()
        rows = dashboard_rows(self._store.list_gpus(self.host), self._live_claims(now), sample, self._uses_of(sample))
        return Dashboard(host=self.host, rows=rows, now=now)

    def home(self, user_id: str, sample: HostSample | None) -> HomeState:
        """One person's claims and every GPU, for their Home tab."""
        dashboard = self.dashboard(sample)
        own = tuple(row.claim for row in dashboard.rows if row.claim is not None and row.claim.user_id == user_id)
        return HomeState(user_id=user_id, own_claims=own, dashboard=dashboard)

    def claim(
        self,
        user_id: str,
        selection: GpuSelection,
        purpose: Purpose,
        duration: timedelta | None,
        sample: HostSample | None = None,
        *,
        confirm_by_dm: bool = False,
    ) -> ClaimOutcome:
        """Claim the selected GPUs all or nothing (`any`: a free one, idle ones first).

        `sample` is the latest telemetry (None: none yet). A GPU it shows not responding or unreadable is
        refused; one that someone's unclaimed job is using (or whose processes cannot be listed) is claimed,
        with a warning in the outcome. A MIG card claimed whole takes all its slices, so a card and its
        slices exclude each other.

        With `confirm_by_dm`, each claim's holder is owed a DM confirming it, queued with the claim: for
        the claim form, which closes on submit and has no reply to carry the confirmation.

        The purpose was checked on the way in (`check_purpose`), once.

        Raises:
            ClaimRefused: duration out of bounds, unknown GPU, GPU held itself or through its card or slices
                (AlreadyHeld, AlreadyYours), not responding (GpuNotResponding), unreadable (GpuUnreadable), a
                card and its slice named together (SelectionOverlaps), none free (NoFreeGpu).
        """
        duration = self.policy.default_duration if duration is None else duration
        self.policy.check_duration(duration)
        gpus = self._store.list_gpus(self.host)
        uses = self._uses(gpus, sample)
        if selection.any_free:
            return self._claim_first_free(user_id, gpus, purpose, duration, uses, confirm_by_dm)
        chosen = _resolve(selection, gpus)
        both = overlap(chosen)
        if both is not None:
            raise SelectionOverlaps(both[0].label, both[1].label)
        now = self._clock.now()
        self._expire_overdue(now)
        live = self._store.active_claims(self.host)
        for gpu in chosen:
            holder = conflicting_claim(gpu, live)
            if holder is not None and holder.user_id == user_id and holder.gpu_uuid == gpu.uuid:
                raise AlreadyYours(gpu.label)
            if holder is not None:
                raise AlreadyHeld(gpu.label, holder.user_id, holder.ends_at, holder.label)
        for gpu in chosen:
            _check_claimable(gpu, uses[gpu.uuid])
        # The store re-checks atomically: a racing claim that won meanwhile raises AlreadyHeld here.
        new = _new_claims(chosen, user_id, purpose, now, duration)
        claims = tuple(self._store.create_claims(new, confirm_by_dm=confirm_by_dm))
        return ClaimOutcome(claims, _in_use_warnings(chosen, uses), cuda_devices(claims, gpus))

    def release(self, user_id: str, selection: GpuSelection | None, *, as_admin: bool = False) -> ReleaseOutcome:
        """Release the caller's claims on the selected GPUs (None: all of the caller's claims).

        An admin (listed in the policy, or `as_admin` for the host's own CLI) may release anyone's claim;
        the holder is then sent a DM naming the admin.

        Raises:
            ClaimRefused: unknown GPU, GPU not claimed, claimed by someone else, or the caller holds nothing.
        """
        now = self._clock.now()
        self._expire_overdue(now)
        if selection is None:
            targets = [claim for claim in self._store.active_claims(self.host) if claim.user_id == user_id]
            if not targets:
                raise ClaimRefused("You hold no GPUs here.")
        else:
            targets = self._held_claims(_resolve(selection, self._store.list_gpus(self.host)))
        return self._release(user_id, targets, now, as_admin)

    def release_claim(self, user_id: str, claim_id: int) -> ReleaseOutcome:
        """Release one claim by id (a button on a DM or the Home tab).

        Raises:
            ClaimNotActive: it has already ended (released or expired).
            NotHolder: it is someone else's and the caller is no admin.
        """
        now = self._clock.now()
        self._expire_overdue(now)
        outcome = self._release(user_id, [self._active_claim(claim_id)], now, as_admin=False)
        if not (outcome.released or outcome.forced):
            raise ClaimNotActive(claim_id)
        return outcome

    def extend(self, user_id: str, selection: GpuSelection, duration: timedelta) -> ExtendOutcome:
        """Push the end of the caller's claims later, never past the maximum duration counted from now.

        Raises:
            ClaimRefused: unknown GPU, not claimed, not the caller's, or already at the maximum.
        """
        now = self._clock.now()
        self._expire_overdue(now)
        targets = self._held_claims(_resolve(selection, self._store.list_gpus(self.host)))
        return self._extend(user_id, targets, duration, now, expected_ends_at=None)

    def extend_claim(
        self, user_id: str, claim_id: int, duration: timedelta, expected_ends_at: datetime
    ) -> ExtendOutcome:
        """Extend one claim by id, only if it still ends at `expected_ends_at` (the end the button showed).

        Raises:
            ClaimNotActive: it has already ended.
            ClaimChanged: it was extended since the button was shown (e.g. the button was pressed twice).
            ClaimRefused: it is someone else's, or already at the maximum.
        """
        now = self._clock.now()
        self._expire_overdue(now)
        return self._extend(user_id, [self._active_claim(claim_id)], duration, now, expected_ends_at)

    def process_due(self) -> DueReport:
        """Expire claims past their end, then warn holders of claims ending within the warning lead time.

        Each change is a conditional update in the store, so a restart, an overlapping tick or a second
        daemon never expires or warns twice. Expiring first means a claim that ended while gpubot was down
        gets its expiry, never a late warning.
        """
        now = self._clock.now()
        expired = self._expire_overdue(now)
        warned = [
            claim
            for claim in self._store.claims_to_warn(now, self.policy.warn_before)
            if claim.host == self.host
            and self._store.mark_warned(claim.id, now, Notice(NoticeKind.EXPIRY_WARNING, claim.user_id, claim.id))
        ]
        return DueReport(expired=tuple(expired), warned=tuple(warned))

    def _release(self, user_id: str, targets: Sequence[Claim], now: datetime, as_admin: bool) -> ReleaseOutcome:
        for claim in targets:
            if claim.user_id != user_id and not (as_admin or user_id in self.policy.admins):
                raise NotHolder(claim.label, claim.user_id)
        released: list[Claim] = []
        forced: list[Claim] = []
        for claim in targets:
            is_forced = claim.user_id != user_id
            notice = Notice(NoticeKind.FORCE_RELEASED, claim.user_id, claim.id, user_id) if is_forced else None
            event = EventKind.FORCE_RELEASED if is_forced else EventKind.RELEASED
            try:
                ended = self._store.end_claim(claim.id, ClaimStatus.RELEASED, event, user_id, now, notice)
            except ClaimNotActive:
                continue  # Ended by a racing release or expiry: the GPU is free either way.
            (forced if is_forced else released).append(ended)
        return ReleaseOutcome(released=tuple(released), forced=tuple(forced))

    def _extend(
        self,
        user_id: str,
        targets: Sequence[Claim],
        duration: timedelta,
        now: datetime,
        expected_ends_at: datetime | None,
    ) -> ExtendOutcome:
        for claim in targets:
            if claim.user_id != user_id:
                raise NotHolder(claim.label, claim.user_id)
        latest_end = now + self.policy.max_duration
        if all(claim.ends_at >= latest_end for claim in targets):
            raise ClaimRefused(
                f"Already at the maximum: a claim can run at most {format_duration(self.policy.max_duration)} from now."
            )
        capped = False
        extended: list[Claim] = []
        for claim in targets:
            wanted = claim.ends_at + duration
            ends_at = min(wanted, latest_end)
            capped = capped or ends_at < wanted
            if ends_at <= claim.ends_at:
                extended.append(claim)
                continue
            extended.append(self._store.extend_claim(claim.id, ends_at, user_id, now, expected_ends_at))
        return ExtendOutcome(claims=tuple(extended), capped=capped, now=now)

    def _active_claim(self, claim_id: int) -> Claim:
        claim = self._store.get_claim(claim_id)
        if claim is None or claim.status is not ClaimStatus.ACTIVE or claim.host != self.host:
            raise ClaimNotActive(claim_id)
        return claim

    def _claim_first_free(
        self,
        user_id: str,
        gpus: Sequence[Gpu],
        purpose: Purpose,
        duration: timedelta,
        uses: dict[str, GpuUse],
        confirm_by_dm: bool,
    ) -> ClaimOutcome:
        """Claim one free GPU, the most usable first.

        An idle one if any, then one without telemetry (or whose processes cannot be listed), then one in
        use; never one that is not responding or unreadable. Among equals a whole card comes before a MIG
        slice; a MIG card is never taken whole (it is partitioned to be shared by slice).
        """
        now = self._clock.now()
        self._expire_overdue(now)
        live = self._store.active_claims(self.host)
        partitioned = mig_cards(gpus)
        free = [gpu for gpu in gpus if gpu.uuid not in partitioned and conflicting_claim(gpu, live) is None]
        candidates = sorted(
            (gpu for gpu in free if not uses[gpu.uuid].unclaimable),
            key=lambda gpu: (_PREFERENCE[uses[gpu.uuid].availability], gpu.is_slice),
        )
        for gpu in candidates:
            try:
                new = _new_claims([gpu], user_id, purpose, now, duration)
                claims = tuple(self._store.create_claims(new, confirm_by_dm=confirm_by_dm))
                return ClaimOutcome(claims, _in_use_warnings([gpu], uses), cuda_devices(claims, gpus))
            except AlreadyHeld:
                continue  # Someone won this one a moment ago; try the next free GPU.
        silent = [gpu for gpu in free if gpu not in candidates]
        raise NoFreeGpu(
            not_responding=[gpu.label for gpu in silent if uses[gpu.uuid].not_responding],
            unreadable=[gpu.label for gpu in silent if not uses[gpu.uuid].not_responding],
        )

    def _uses(self, gpus: Sequence[Gpu], sample: HostSample | None) -> dict[str, GpuUse]:
        uses = self._uses_of(sample)
        return {gpu.uuid: uses.get(gpu.uuid, _NO_TELEMETRY) for gpu in gpus}

    def _uses_of(self, sample: HostSample | None) -> dict[str, GpuUse]:
        """How each GPU in `sample` is used, by UUID; worked out once per sample (it never changes)."""
        if sample is None:
            return {}
        last = self._uses_of_last
        if last is not None and last[0] is sample:
            return last[1]
        uses = {gpu.uuid: gpu_use(gpu, self.policy.load) for gpu in sample.gpus}
        self._uses_of_last = (sample, uses)
        return uses

    def _held_claims(self, gpus: Sequence[Gpu]) -> list[Claim]:
        live = {claim.gpu_uuid: claim for claim in self._store.active_claims(self.host)}
        missing = [gpu for gpu in gpus if gpu.uuid not in live]
        if missing:
            raise NotClaimed(missing[0].label)
        return [live[gpu.uuid] for gpu in gpus]

    def _live_claims(self, now: datetime) -> list[Claim]:
        return [claim for claim in self._store.active_claims(self.host) if claim.ends_at > now]

    def _expire_overdue(self, now: datetime) -> list[Claim]:
        """End claims past their end; also run before acting, so a late scheduler tick never blocks a claim."""
        expired = []
        for claim in self._store.claims_past_end(now):
            if claim.host != self.host:
                continue
            try:
                expired.append(
                    self._store.end_claim(
                        claim.id,
                        ClaimStatus.EXPIRED,
                        EventKind.EXPIRED,
                        None,
                        now,
                        Notice(NoticeKind.EXPIRED, claim.user_id, claim.id),
                    )
                )
            except ClaimNotActive:
                continue  # Another tick or daemon expired it first.
        return expired


# Which free GPU `any` takes first: a GPU known to be idle before one without telemetry, before one in use.
_PREFERENCE = {
    Availability.IDLE: 0,
    Availability.UNKNOWN: 1,
    Availability.IN_USE: 2,
    Availability.NOT_RESPONDING: 3,
    Availability.UNREADABLE: 3,
}


def _check_claimable(gpu: Gpu, use: GpuUse) -> None:
    if use.not_responding:
        raise GpuNotResponding(gpu.label)
    if use.availability is Availability.UNREADABLE:
        raise GpuUnreadable(gpu.label, use.reason or "no reason given")


def _in_use_warnings(gpus: Sequence[Gpu], uses: dict[str, GpuUse]) -> tuple[str, ...]:
    warnings = []
    for gpu in gpus:
        use = uses[gpu.uuid]
        if use.in_use:
            warnings.append(
                f"GPU {gpu.label} is in use by {use.description()}, which holds no claim."
                " Check with them before you start, or your jobs will share the GPU."
            )
        elif use.reason is not None:
            warnings.append(f"GPU {gpu.label}'s processes cannot be listed ({use.reason}): it may not be idle.")
    return tuple(warnings)


def _resolve(selection: GpuSelection, gpus: Sequence[Gpu]) -> list[Gpu]:
    by_label = {gpu.label: gpu for gpu in gpus}
    unknown = [label for label in selection.labels if label not in by_label]
    if unknown:
        raise UnknownGpu(unknown[0], list(by_label))
    return [by_label[label] for label in selection.labels]


def _new_claims(gpus: Sequence[Gpu], user_id: str, purpose: str, now: datetime, duration: timedelta) -> list[NewClaim]:
    return [NewClaim(gpu, user_id, purpose, now, now + duration) for gpu in gpus]
