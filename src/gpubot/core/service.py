"""The claim rules: who may claim, release and extend which GPU, for how long.

`ClaimService` takes a clock and a store; it never reads the wall clock, Slack, SQL or NVML itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gpubot.core.clock import Clock
from gpubot.core.commands import GpuSelection, validate_purpose
from gpubot.core.durations import format_duration
from gpubot.core.errors import (
    AlreadyHeld,
    ClaimNotActive,
    ClaimRefused,
    NoFreeGpu,
    NotClaimed,
    NotHolder,
    UnknownGpu,
)
from gpubot.core.models import (
    Claim,
    ClaimStatus,
    EventKind,
    Gpu,
    GpuSample,
    HostSample,
    NewClaim,
    Notice,
    NoticeKind,
)
from gpubot.core.ports import ClaimStore


@dataclass(frozen=True)
class ClaimPolicy:
    """The bounds a claim must respect and who may release anyone's claim."""

    min_duration: timedelta = timedelta(minutes=30)
    max_duration: timedelta = timedelta(hours=12)
    default_duration: timedelta = timedelta(hours=2)
    admins: frozenset[str] = frozenset()

    def check_duration(self, duration: timedelta) -> None:
        """Raises:
        ClaimRefused: the duration is outside the configured bounds.
        """
        if duration < self.min_duration:
            raise ClaimRefused(
                f"{format_duration(duration)} is shorter than the minimum of {format_duration(self.min_duration)}."
            )
        if duration > self.max_duration:
            raise ClaimRefused(
                f"{format_duration(duration)} is longer than the maximum of {format_duration(self.max_duration)}."
            )


@dataclass(frozen=True)
class GpuRow:
    """One GPU as a person sees it: the GPU, its active claim if any, its latest sample if any."""

    gpu: Gpu
    claim: Claim | None
    sample: GpuSample | None


@dataclass(frozen=True)
class Dashboard:
    """Every GPU on the host with who holds it, at one instant."""

    host: str
    rows: tuple[GpuRow, ...]
    now: datetime

    @property
    def free_count(self) -> int:
        return sum(1 for row in self.rows if row.claim is None)


@dataclass(frozen=True)
class ClaimOutcome:
    claims: tuple[Claim, ...]


@dataclass(frozen=True)
class ReleaseOutcome:
    released: tuple[Claim, ...]
    # Claims of other people ended by an admin; their holders get a DM.
    forced: tuple[Claim, ...]


@dataclass(frozen=True)
class ExtendOutcome:
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

    def sync_inventory(self, sample: HostSample) -> None:
        """Record the GPUs telemetry found, so claims can name them."""
        gpus = [Gpu(self.host, gpu.uuid, gpu.index, gpu.name) for gpu in sample.gpus]
        self._store.sync_gpus(self.host, gpus, self._clock.now())

    def dashboard(self, sample: HostSample | None) -> Dashboard:
        """Every GPU with its claim (one past its end counts as free) and its latest sample."""
        now = self._clock.now()
        claims = {claim.gpu_uuid: claim for claim in self._live_claims(now)}
        samples = {gpu.uuid: gpu for gpu in sample.gpus} if sample else {}
        rows = tuple(
            GpuRow(gpu=gpu, claim=claims.get(gpu.uuid), sample=samples.get(gpu.uuid))
            for gpu in self._store.list_gpus(self.host)
        )
        return Dashboard(host=self.host, rows=rows, now=now)

    def claims_of(self, user_id: str) -> list[Claim]:
        """The caller's active claims on this host that have not run out."""
        return [claim for claim in self._live_claims(self._clock.now()) if claim.user_id == user_id]

    def claim(self, user_id: str, selection: GpuSelection, purpose: str, duration: timedelta | None) -> ClaimOutcome:
        """Claim the selected GPUs all or nothing (`any`: the first free one).

        Raises:
            ClaimRefused: bad purpose or duration, unknown GPU, GPU held (AlreadyHeld), none free (NoFreeGpu).
        """
        purpose = validate_purpose(purpose, "/gpu claim <gpu> <purpose> [duration]")
        duration = self.policy.default_duration if duration is None else duration
        self.policy.check_duration(duration)
        gpus = self._store.list_gpus(self.host)
        if selection.any_free:
            return self._claim_first_free(user_id, gpus, purpose, duration)
        chosen = _resolve(selection, gpus)
        now = self._clock.now()
        self._expire_overdue(now)
        live = {claim.gpu_uuid: claim for claim in self._store.active_claims(self.host)}
        for gpu in chosen:
            holder = live.get(gpu.uuid)
            if holder is not None and holder.user_id == user_id:
                raise ClaimRefused(
                    f"You already hold GPU {gpu.index}; use `/gpu extend {gpu.index} <duration>` for more time."
                )
            if holder is not None:
                raise AlreadyHeld(gpu.index, holder.user_id, holder.ends_at)
        # The store re-checks atomically: a racing claim that won meanwhile raises AlreadyHeld here.
        return ClaimOutcome(tuple(self._store.create_claims(_new_claims(chosen, user_id, purpose, now, duration))))

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
            for claim in targets:
                if claim.user_id != user_id and not (as_admin or user_id in self.policy.admins):
                    raise NotHolder(claim.gpu_index, claim.user_id)
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

    def extend(self, user_id: str, selection: GpuSelection, duration: timedelta) -> ExtendOutcome:
        """Push the end of the caller's claims later, never past the maximum duration counted from now.

        Raises:
            ClaimRefused: unknown GPU, not claimed, not the caller's, or already at the maximum.
        """
        now = self._clock.now()
        self._expire_overdue(now)
        targets = self._held_claims(_resolve(selection, self._store.list_gpus(self.host)))
        for claim in targets:
            if claim.user_id != user_id:
                raise NotHolder(claim.gpu_index, claim.user_id)
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
            extended.append(self._store.extend_claim(claim.id, ends_at, user_id, now))
        return ExtendOutcome(claims=tuple(extended), capped=capped, now=now)

    def _claim_first_free(self, user_id: str, gpus: Sequence[Gpu], purpose: str, duration: timedelta) -> ClaimOutcome:
        now = self._clock.now()
        self._expire_overdue(now)
        held = {claim.gpu_uuid for claim in self._store.active_claims(self.host)}
        for gpu in gpus:
            if gpu.uuid in held:
                continue
            try:
                new = _new_claims([gpu], user_id, purpose, now, duration)
                return ClaimOutcome(tuple(self._store.create_claims(new)))
            except AlreadyHeld:
                continue  # Someone won this one a moment ago; try the next free GPU.
        raise NoFreeGpu()

    def _held_claims(self, gpus: Sequence[Gpu]) -> list[Claim]:
        live = {claim.gpu_uuid: claim for claim in self._store.active_claims(self.host)}
        missing = [gpu for gpu in gpus if gpu.uuid not in live]
        if missing:
            raise NotClaimed(missing[0].index)
        return [live[gpu.uuid] for gpu in gpus]

    def _live_claims(self, now: datetime) -> list[Claim]:
        return [claim for claim in self._store.active_claims(self.host) if claim.ends_at > now]

    def _expire_overdue(self, now: datetime) -> None:
        """End claims past their end before acting, so a late scheduler tick never blocks a new claim."""
        for claim in self._store.claims_past_end(now):
            if claim.host != self.host:
                continue
            try:
                self._store.end_claim(
                    claim.id,
                    ClaimStatus.EXPIRED,
                    EventKind.EXPIRED,
                    None,
                    now,
                    Notice(NoticeKind.EXPIRED, claim.user_id, claim.id),
                )
            except ClaimNotActive:
                continue


def _resolve(selection: GpuSelection, gpus: Sequence[Gpu]) -> list[Gpu]:
    by_index = {gpu.index: gpu for gpu in gpus}
    unknown = [index for index in selection.indices if index not in by_index]
    if unknown:
        raise UnknownGpu(unknown[0], sorted(by_index))
    return [by_index[index] for index in selection.indices]


def _new_claims(gpus: Sequence[Gpu], user_id: str, purpose: str, now: datetime, duration: timedelta) -> list[NewClaim]:
    return [NewClaim(gpu, user_id, purpose, now, now + duration) for gpu in gpus]
