"""What the core needs from the outside world, as structural protocols the adapters implement."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from gpubot.core.models import (
    Claim,
    ClaimStatus,
    ClaimUsage,
    EventKind,
    Gpu,
    HomeOpen,
    HostReport,
    HostRole,
    HostSample,
    NewClaim,
    Notice,
    OutboxItem,
    Person,
)
from gpubot.core.usage import UsageRule
from gpubot.core.usage_report import UsageFigures, UsageFilter


class Telemetry(Protocol):
    """A GPU telemetry backend (NVML, nvidia-smi, fake)."""

    backend_name: str

    def sample(self) -> HostSample:
        """Read every GPU on the host.

        A GPU that cannot be read comes back with `lost=True`; a field it cannot report comes back None.

        Raises:
            TelemetryError: the backend cannot sample at all (library gone, executable missing, bad file).
        """
        ...

    def close(self) -> None:
        """Release whatever the backend holds (NVML handle, nothing for the others)."""
        ...


class PeopleStore(Protocol):
    """People's display names, kept so that what has no Slack connection (the host CLI) can show them."""

    def people(self, user_ids: Collection[str]) -> dict[str, Person]:
        """The names known for these users, by user ID; those never looked up are left out."""
        ...

    def people_named(self, display_name: str) -> list[Person]:
        """Everyone whose display name is `display_name`, compared without case."""
        ...

    def save_person(self, person: Person) -> None:
        """Record (or replace) a user's display name.

        Raises:
            StoreBusy: the database stayed locked.
        """
        ...


class SlackEventStore(Protocol):
    """Slack's events as every daemon on the database sees them: which were handled, and whose Home tab is open."""

    def home_opened(
        self, opens: Sequence[HomeOpen], now: datetime, forget_before: datetime | None = None
    ) -> list[bool]:
        """Record, in one transaction, that these people opened their Home tab, but no event twice (Slack's retries).

        Args:
            opens: who opened it, by which event; an event without an id cannot be told from a retry.
            now: when.
            forget_before: also forget, in the same transaction, the events handled and the Home tabs last
                opened before this.

        Returns:
            For each of `opens`, in order: True when this call recorded it; False when its event was recorded
            already, by any daemon, or earlier in `opens`.

        Raises:
            StoreBusy: the database stayed locked.
        """
        ...

    def home_viewers(self, user_ids: Collection[str], since: datetime) -> set[str]:
        """Those of these people who opened their Home tab at or after `since`."""
        ...


class ClaimStore(Protocol):
    """Durable claims, their audit log and the DM outbox.

    Every method is one transaction. The store, not the caller, guarantees that a GPU has at most one
    active claim, and that a MIG card's claim and its slices' claims exclude each other, so concurrent
    callers in any number of threads or processes cannot both win.
    """

    def sync_gpus(self, host: str, gpus: Sequence[Gpu], now: datetime) -> None:
        """Record the GPUs a host has now (by UUID); those no longer present stop being listed."""
        ...

    def list_gpus(self, host: str | None = None) -> list[Gpu]:
        """The GPUs present on `host` (None: every host's, by host), by index, each MIG card followed by its slices."""
        ...

    def active_claims(self, host: str | None = None) -> list[Claim]:
        """Active claims (of one host, or all), ordered by host, GPU index and MIG slice (a card's first)."""
        ...

    def claim_usage(self, claim_ids: Collection[int]) -> dict[int, ClaimUsage]:
        """What each of these claims' GPUs did while held, by claim ID; claims never observed are left out."""
        ...

    def catch_up(self) -> None:
        """Make the next reads see every change committed anywhere before this call (by any process).

        A change calls it before reading what it changes; a no-op where reads always see every commit.

        Raises:
            StoreBusy: the database did not answer.
        """
        ...

    def get_claim(self, claim_id: int) -> Claim | None:
        """One claim by id, whatever its status."""
        ...

    def create_claims(self, new_claims: Sequence[NewClaim], *, confirm_by_dm: bool = False) -> list[Claim]:
        """Write several claims all or nothing, each with a `claimed` event.

        With `confirm_by_dm`, each also gets a `claimed` DM to its holder in the same transaction.

        Raises:
            AlreadyHeld: one of the GPUs already has an active claim, itself or through its MIG card or
                slices; nothing was written.
            StoreBusy: the database stayed locked.
        """
        ...

    def end_claim(
        self,
        claim_id: int,
        status: ClaimStatus,
        event: EventKind,
        actor_id: str | None,
        now: datetime,
        notice: Notice | None = None,
    ) -> Claim:
        """End an active claim (released or expired), with its event and optional DM, in one transaction.

        Raises:
            ClaimNotActive: the claim had already ended; nothing was written.
        """
        ...

    def extend_claim(
        self,
        claim_id: int,
        ends_at: datetime,
        actor_id: str,
        now: datetime,
        expected_ends_at: datetime | None = None,
    ) -> Claim:
        """Move an active claim's end to `ends_at` and clear its warning, with an `extended` event.

        With `expected_ends_at`, only if the claim still ends then (to the second): a button pressed twice
        must not extend twice.

        Raises:
            ClaimNotActive: the claim had already ended; nothing was written.
            ClaimChanged: it no longer ends at `expected_ends_at`; nothing was written.
        """
        ...

    def claims_to_warn(self, now: datetime, warn_before: timedelta) -> list[Claim]:
        """Active, not yet warned claims that end within `warn_before` of `now` but have not ended."""
        ...

    def mark_warned(self, claim_id: int, now: datetime, notice: Notice) -> bool:
        """Set `warned_at` (only if still active and unwarned) and queue the DM; False when it was not."""
        ...

    def claims_past_end(self, now: datetime) -> list[Claim]:
        """Active claims whose end is at or before `now`."""
        ...

    def lease_notices(self, now: datetime, lease_until: datetime, limit: int = 50) -> list[OutboxItem]:
        """Take due notices (unsent, next attempt due; oldest first) for delivery.

        In the same transaction this pushes their next attempt to `lease_until` under a new lease token, so a second
        sender (another daemon on the same database) skips them. Each is marked unsettled from `now` unless it already
        was; each item returned carries its lease and the unsettled time from before (an earlier attempt's, or None).
        """
        ...

    def mark_notice_sent(self, notice_id: int, now: datetime) -> None:
        """Record that Slack accepted the notice (whoever holds its lease), unless it was already."""
        ...

    def defer_notice(
        self,
        notice_id: int,
        retry_at: datetime,
        error: str,
        *,
        lease: str | None = None,
        unsettled_since: datetime | None = None,
        count_attempt: bool = True,
    ) -> bool:
        """Record a failed delivery; the notice is tried again at `retry_at`.

        With `lease`, only while that lease holds it. `unsettled_since`: when an attempt that may have reached Slack
        began, None when none may have. False when nothing changed (sent, given up, or the lease lost).
        """
        ...

    def abandon_notice(self, notice_id: int, now: datetime, reason: str, *, lease: str | None = None) -> bool:
        """Give the notice up for good (undeliverable, or no longer meaningful), `reason` kept.

        With `lease`, only while that lease holds it. False when nothing changed.
        """
        ...


@runtime_checkable
class FleetStore(Protocol):
    """The fleet's hosts in the shared database: who reports for each host name, and each host's latest sample.

    A host name has one live reporter at a time: a process registers with a token of its own (its
    `instance`), and only that instance's reports are accepted until it releases the name or goes silent for
    longer than the host time-out.
    """

    def register_host(
        self, name: str, role: HostRole, instance: str, holder: str, now: datetime, timeout: timedelta
    ) -> None:
        """Take the host name for `instance` (`holder` says who it is, for the message another one gets).

        Raises:
            HostNameTaken: another instance reported for this name within `timeout`; nothing was written.
        """
        ...

    def report(
        self, name: str, instance: str, sample: HostSample | None, now: datetime, usage: UsageRule | None = None
    ) -> bool:
        """Record the host's latest sample and that it is alive; False when the name is no longer this instance's.

        With `usage`, the sample is counted into the usage record in the same transaction, once per sample time.
        """
        ...

    def release_host(self, name: str, instance: str) -> None:
        """Give the name up on a clean stop (only if `instance` still holds it), so a successor need not wait."""
        ...

    def hosts(self) -> list[HostReport]:
        """Every host that ever reported, by name, each with its latest sample."""
        ...


class UsageSource(Protocol):
    """The usage sums: claims' tallies and the GPUs' hourly rollups, as the hosts' reports counted them."""

    def usage_figures(
        self, since: datetime, until: datetime, where: UsageFilter, *, per_gpu: bool = False
    ) -> UsageFigures:
        """Claims held within [since, until) with their tallies, and the GPUs' hourly utilization, per `where`.

        With `per_gpu`, each GPU's figures too (slower: for the host's tables, not for Slack's deadline).
        """
        ...


class DigestStore(Protocol):
    """Each weekly digest, by the moment it fell due: taken by one daemon, then posted once."""

    def take_digest(self, due_at: datetime, channel: str, lease: str, now: datetime, until: datetime) -> bool:
        """Take the digest due at `due_at` for `lease` until `until`.

        False if it was posted, is posting, or another daemon's lease on it still runs.
        """
        ...

    def digest_posting(self, due_at: datetime, lease: str, now: datetime) -> bool:
        """Mark it as being sent, under `lease`: from here on it is never sent again. False: the lease was lost."""
        ...

    def digest_posted(self, due_at: datetime, lease: str, now: datetime, message_ts: str) -> None:
        """Record it as posted, with its message's timestamp."""
        ...

    def digest_not_posted(self, due_at: datetime, lease: str) -> None:
        """Slack refused it (so it was not posted): let a later try take it once the lease runs out."""
        ...
