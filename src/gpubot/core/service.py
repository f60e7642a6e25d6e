"""The claim rules: who may claim, release and extend which GPU, for how long, on which host of the fleet.

`ClaimService` takes a clock and a store; it never reads the wall clock, Slack, SQL or NVML itself. Its own
host's telemetry comes from the daemon's sampler; the other hosts' from their reports, handed in by the daemon's
background job (`fleet_reported`), so no request waits on the database for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from gpubot.core import fleet as rules
from gpubot.core.clock import Clock
from gpubot.core.dashboard import Dashboard, Fleet, FleetHome, HomeState, dashboard_rows
from gpubot.core.durations import format_duration
from gpubot.core.errors import (
    AlreadyHeld,
    AlreadyYours,
    ClaimNotActive,
    ClaimRefused,
    NoFreeGpu,
    NoHostWithFree,
    NotClaimed,
    NotHolder,
    SelectionOverlaps,
)
from gpubot.core.load import GpuUse, gpu_use
from gpubot.core.mig import conflicting_claim, cuda_devices, overlap
from gpubot.core.models import (
    Claim,
    ClaimStatus,
    EventKind,
    Gpu,
    HostReport,
    HostSample,
    NewClaim,
    Notice,
    NoticeKind,
)
from gpubot.core.outcomes import ClaimOutcome, DueReport, ExtendOutcome, ReleaseOutcome
from gpubot.core.policy import ClaimPolicy, Purpose
from gpubot.core.ports import ClaimStore
from gpubot.core.selection import GpuSelection


class ClaimService:
    """Claim, release and extend GPUs on the hosts of the fleet, under a `ClaimPolicy`.

    Args:
        store: the claims database.
        clock: the time.
        policy: the claim rules' bounds.
        host: this daemon's own host, whose telemetry the caller passes in.
        host_timeout: how long another host may go without a report before it counts as offline.
    """

    def __init__(
        self,
        store: ClaimStore,
        clock: Clock,
        policy: ClaimPolicy,
        host: str,
        host_timeout: timedelta = timedelta(seconds=30),
    ) -> None:
        self._store = store
        self._clock = clock
        self.policy = policy
        self.host = host
        self.host_timeout = host_timeout
        # The other hosts' latest reports, by name: replaced whole by `fleet_reported`.
        self._reports: dict[str, HostReport] = {}
        # How each GPU of each host's latest sample is used: every view between two samples asks again.
        self._uses_of_last: dict[str, tuple[HostSample, dict[str, GpuUse]]] = {}

    def sync_inventory(self, sample: HostSample) -> None:
        """Record the GPUs telemetry found, so claims can name them."""
        self._store.sync_gpus(self.host, rules.inventory(self.host, sample), self._clock.now())

    def fleet_reported(self, reports: Sequence[HostReport]) -> list[HostSample]:
        """Take the fleet's latest host reports (read in the background): the other hosts and their samples.

        A host's GPUs are recorded from its latest report when they differ from the store's, so claims (and an
        offline host's listing) can name them whichever process wrote the report.

        Returns:
            The other hosts' samples reported since the last call, for what keeps their history (the Home trends).
        """
        now = self._clock.now()
        others = {report.name: report for report in reports if report.name != self.host}
        listed = rules.by_host(self._store.list_gpus())
        for report in others.values():
            if report.sample is None:
                continue
            gpus = rules.inventory(report.name, report.sample)
            if gpus != listed.get(report.name, []):
                self._store.sync_gpus(report.name, gpus, now)
        fresh = [
            report.sample
            for name, report in others.items()
            if report.sample is not None
            and (name not in self._reports or self._reports[name].last_report_at != report.last_report_at)
        ]
        self._reports = others
        return fresh

    def several_hosts(self) -> bool:
        """Whether the fleet has more than one host, so that people name a GPU with its host (`box-2:3`)."""
        return len(self._host_names()) > 1

    def dashboard(self, sample: HostSample | None) -> Dashboard:
        """This host's GPUs with their claims (one past its end counts as free) and its latest sample."""
        now = self._clock.now()
        live = [claim for claim in self._store.active_claims(self.host) if claim.ends_at > now]
        rows = dashboard_rows(self._store.list_gpus(self.host), live, sample, self._uses_of(self.host, sample))
        return Dashboard(host=self.host, rows=rows, now=now, sample=sample)

    def fleet(self, sample: HostSample | None) -> Fleet:
        """Every host's GPUs with their claims and latest samples; `sample` is this host's own.

        A host that has not reported within the time-out is offline: listed with when it was last seen, its
        telemetry left out (it is stale).
        """
        now = self._clock.now()
        gpus = rules.by_host(self._store.list_gpus())
        live = rules.by_host(claim for claim in self._store.active_claims() if claim.ends_at > now)
        hosts = tuple(
            self._host_dashboard(name, sample, gpus.get(name, []), live.get(name, []), now)
            for name in rules.host_names(self.host, self._reports, gpus)
        )
        return Fleet(hosts=hosts, now=now)

    def _host_dashboard(
        self, name: str, sample: HostSample | None, gpus: Sequence[Gpu], live: Sequence[Claim], now: datetime
    ) -> Dashboard:
        """One host of the fleet: `sample` is this daemon's own host's; another's comes from its report."""
        online, seen = rules.host_of(name, self.host, self._reports, now, self.host_timeout)
        shown = sample if name == self.host else self._reports[name].sample if online else None
        rows = dashboard_rows(gpus, live, shown, self._uses_of(name, shown))
        return Dashboard(name, rows, now, online=online, last_seen_at=seen, sample=shown)

    def home(self, user_id: str, sample: HostSample | None, expanded: str | None = None) -> HomeState | FleetHome:
        """One person's claims and every GPU, for their Home tab; in a fleet, `expanded` is the host shown in full."""
        fleet = self.fleet(sample)
        own = tuple(
            row.claim
            for host in fleet.hosts
            for row in host.rows
            if row.claim is not None and row.claim.user_id == user_id
        )
        if not fleet.several:
            return HomeState(user_id=user_id, own_claims=own, dashboard=fleet.hosts[0])
        shown = next((host for host in fleet.hosts if host.host == expanded), None)
        return FleetHome(user_id=user_id, own_claims=own, fleet=fleet, expanded=shown)

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
        """Claim the selected GPUs all or nothing, all on one host (`any`: free ones, idle ones first).

        `sample` is this host's latest telemetry (None: none yet). A GPU it shows not responding or unreadable is
        refused; one that someone's unclaimed job is using (or whose processes cannot be listed) is claimed,
        with a warning in the outcome. A MIG card claimed whole takes all its slices, so a card and its
        slices exclude each other. An offline host's GPUs are refused.

        With `confirm_by_dm`, each claim's holder is owed a DM confirming it, queued with the claim: for
        the claim form, which closes on submit and has no reply to carry the confirmation.

        The purpose was checked on the way in (`check_purpose`), once.

        Raises:
            ClaimRefused: duration out of bounds, unknown GPU or host, a GPU named without its host in a fleet of
                several (HostNeeded), the host offline (HostOffline), GPU held itself or through its card or slices
                (AlreadyHeld, AlreadyYours), not responding (GpuNotResponding), unreadable (GpuUnreadable), a card
                and its slice named together (SelectionOverlaps), none free (NoFreeGpu, NoHostWithFree).
        """
        duration = self.policy.default_duration if duration is None else duration
        self.policy.check_duration(duration)
        # Another daemon's commit of a moment ago must count: this change reads what it changes.
        self._store.catch_up()
        now = self._clock.now()
        # Before the fleet is read, so a GPU whose claim just ended counts as free.
        self._expire_overdue(now)
        if selection.any_free:
            fleet = self.fleet(sample)
            if selection.host is not None:
                hosts = [rules.claimable_host(fleet.host(selection.host))]
            else:
                hosts = [host for host in fleet.hosts if host.online]
                if not hosts:
                    raise ClaimRefused("No host of the fleet is online right now, so no GPU can be claimed.")
            return self._claim_free(
                user_id, hosts, selection.count, purpose, now, duration, confirm_by_dm, fleet.several
            )
        # Named GPUs are on one host: only its dashboard is built, not the whole fleet's.
        listed = rules.by_host(self._store.list_gpus())
        names = rules.host_names(self.host, self._reports, listed)
        several = len(names) > 1
        target = rules.target_host(selection, names)
        live_there = [claim for claim in self._store.active_claims(target) if claim.ends_at > now]
        host = rules.claimable_host(self._host_dashboard(target, sample, listed.get(target, []), live_there, now))
        gpus = [row.gpu for row in host.rows]
        uses = {row.gpu.uuid: row.use for row in host.rows}
        chosen = rules.resolve(selection, gpus, host.host if several else None)
        both = overlap(chosen)
        if both is not None:
            raise SelectionOverlaps(both[0].label, both[1].label)
        live = self._store.active_claims(host.host)
        for gpu in chosen:
            holder = conflicting_claim(gpu, live)
            if holder is not None and holder.user_id == user_id and holder.gpu_uuid == gpu.uuid:
                raise AlreadyYours(rules.address(gpu.label, gpu.host, several))
            if holder is not None:
                name = rules.address(gpu.label, gpu.host, several)
                raise AlreadyHeld(name, holder.user_id, holder.ends_at, rules.address(holder.label, gpu.host, several))
        for gpu in chosen:
            rules.check_claimable(gpu, uses[gpu.uuid], several)
        # The store re-checks atomically: a racing claim that won meanwhile raises AlreadyHeld here.
        new = _new_claims(chosen, user_id, purpose, now, duration)
        claims = tuple(self._store.create_claims(new, confirm_by_dm=confirm_by_dm))
        return ClaimOutcome(claims, rules.in_use_warnings(chosen, uses, several), cuda_devices(claims, gpus), several)

    def release(self, user_id: str, selection: GpuSelection | None, *, as_admin: bool = False) -> ReleaseOutcome:
        """Release the caller's claims on the selected GPUs (None: all of the caller's claims, on every host).

        An admin (listed in the policy, or `as_admin` for a host's own CLI) may release anyone's claim;
        the holder is then sent a DM naming the admin. An offline host's claims can be released.

        Raises:
            ClaimRefused: unknown GPU or host, a GPU named without its host in a fleet of several, GPU not
                claimed, claimed by someone else, or the caller holds nothing.
        """
        self._store.catch_up()
        now = self._clock.now()
        self._expire_overdue(now)
        names = self._host_names()
        if selection is None:
            targets = [claim for claim in self._store.active_claims() if claim.user_id == user_id]
            if not targets:
                raise ClaimRefused("You hold no GPUs here.")
        else:
            targets = self._held_claims(selection, names)
        return replace(self._release(user_id, targets, now, as_admin), several_hosts=len(names) > 1)

    def release_claim(self, user_id: str, claim_id: int) -> ReleaseOutcome:
        """Release one claim by id (a button on a DM or the Home tab), on whichever host it is.

        Raises:
            ClaimNotActive: it has already ended (released or expired).
            NotHolder: it is someone else's and the caller is no admin.
        """
        self._store.catch_up()
        now = self._clock.now()
        self._expire_overdue(now)
        outcome = self._release(user_id, [self._active_claim(claim_id)], now, as_admin=False)
        if not (outcome.released or outcome.forced):
            raise ClaimNotActive(claim_id)
        return replace(outcome, several_hosts=len(self._host_names()) > 1)

    def extend(self, user_id: str, selection: GpuSelection, duration: timedelta) -> ExtendOutcome:
        """Push the end of the caller's claims later, never past the maximum duration counted from now.

        Raises:
            ClaimRefused: unknown GPU or host, a GPU named without its host in a fleet of several, not claimed,
                not the caller's, or already at the maximum.
        """
        self._store.catch_up()
        now = self._clock.now()
        self._expire_overdue(now)
        names = self._host_names()
        return self._extend(user_id, self._held_claims(selection, names), duration, now, None, len(names) > 1)

    def extend_claim(
        self, user_id: str, claim_id: int, duration: timedelta, expected_ends_at: datetime
    ) -> ExtendOutcome:
        """Extend one claim by id, only if it still ends at `expected_ends_at` (the end the button showed).

        Raises:
            ClaimNotActive: it has already ended.
            ClaimChanged: it was extended since the button was shown (e.g. the button was pressed twice).
            ClaimRefused: it is someone else's, or already at the maximum.
        """
        self._store.catch_up()
        now = self._clock.now()
        self._expire_overdue(now)
        several = len(self._host_names()) > 1
        return self._extend(user_id, [self._active_claim(claim_id)], duration, now, expected_ends_at, several)

    def process_due(self) -> DueReport:
        """Expire claims past their end, then warn holders of claims ending within the warning lead time.

        Every host's claims: an agent's host has no due work of its own. Each change is a conditional update in the
        store, so a restart, an overlapping tick or a second daemon never expires or warns twice. Expiring first
        means a claim that ended while gpubot was down gets its expiry, never a late warning.
        """
        now = self._clock.now()
        expired = self._expire_overdue(now)
        warned = [
            claim
            for claim in self._store.claims_to_warn(now, self.policy.warn_before)
            if self._store.mark_warned(claim.id, now, Notice(NoticeKind.EXPIRY_WARNING, claim.user_id, claim.id))
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
        usage = self._store.claim_usage([claim.id for claim in released + forced]) if released or forced else {}
        return ReleaseOutcome(released=tuple(released), forced=tuple(forced), usage=usage)

    def _extend(
        self,
        user_id: str,
        targets: Sequence[Claim],
        duration: timedelta,
        now: datetime,
        expected_ends_at: datetime | None,
        several: bool,
    ) -> ExtendOutcome:
        for claim in targets:
            if claim.user_id != user_id:
                raise NotHolder(rules.address(claim.label, claim.host, several), claim.user_id)
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
        return ExtendOutcome(claims=tuple(extended), capped=capped, now=now, several_hosts=several)

    def _active_claim(self, claim_id: int) -> Claim:
        claim = self._store.get_claim(claim_id)
        if claim is None or claim.status is not ClaimStatus.ACTIVE:
            raise ClaimNotActive(claim_id)
        return claim

    def _claim_free(
        self,
        user_id: str,
        hosts: Sequence[Dashboard],
        count: int,
        purpose: Purpose,
        now: datetime,
        duration: timedelta,
        confirm_by_dm: bool,
        several: bool,
    ) -> ClaimOutcome:
        """Claim `count` free GPUs on one of `hosts` (online), the most usable first (see `rules.ranked_choices`)."""
        for rows in rules.ranked_choices(hosts, count):
            gpus = [row.gpu for row in rows]
            uses = {row.gpu.uuid: row.use for row in rows}
            try:
                claims = tuple(
                    self._store.create_claims(
                        _new_claims(gpus, user_id, purpose, now, duration), confirm_by_dm=confirm_by_dm
                    )
                )
            except AlreadyHeld:
                continue  # Someone won one of these a moment ago; try the next choice.
            listed = self._store.list_gpus(gpus[0].host)
            return ClaimOutcome(
                claims, rules.in_use_warnings(gpus, uses, several), cuda_devices(claims, listed), several
            )
        if count > 1:
            raise NoHostWithFree(count, rules.most_free(hosts))
        silent = [row for host in hosts for row in host.rows if row.free and row.use.unclaimable]
        raise NoFreeGpu(
            not_responding=[rules.name(row.gpu, several) for row in silent if row.use.not_responding],
            unreadable=[rules.name(row.gpu, several) for row in silent if not row.use.not_responding],
        )

    def _uses_of(self, host: str, sample: HostSample | None) -> dict[str, GpuUse]:
        """How each GPU in `sample` is used, by UUID; worked out once per sample (it never changes)."""
        if sample is None:
            return {}
        last = self._uses_of_last.get(host)
        if last is not None and last[0] is sample:
            return last[1]
        uses = {gpu.uuid: gpu_use(gpu, self.policy.load) for gpu in sample.gpus}
        self._uses_of_last[host] = (sample, uses)
        return uses

    def _host_names(self) -> list[str]:
        return rules.host_names(self.host, self._reports, rules.by_host(self._store.list_gpus()))

    def _held_claims(self, selection: GpuSelection, names: Sequence[str]) -> list[Claim]:
        host = rules.target_host(selection, names)
        several = len(names) > 1
        gpus = rules.resolve(selection, self._store.list_gpus(host), host if several else None)
        live = {claim.gpu_uuid: claim for claim in self._store.active_claims(host)}
        missing = [gpu for gpu in gpus if gpu.uuid not in live]
        if missing:
            raise NotClaimed(rules.name(missing[0], several))
        return [live[gpu.uuid] for gpu in gpus]

    def _expire_overdue(self, now: datetime) -> list[Claim]:
        """End claims past their end; also run before acting, so a late scheduler tick never blocks a claim."""
        expired = []
        for claim in self._store.claims_past_end(now):
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


def _new_claims(gpus: Sequence[Gpu], user_id: str, purpose: str, now: datetime, duration: timedelta) -> list[NewClaim]:
    return [NewClaim(gpu, user_id, purpose, now, now + duration) for gpu in gpus]
