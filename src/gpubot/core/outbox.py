"""Delivery policy for owed DMs: what is due, whether it still means anything, and when to try again."""

from __future__ import annotations

from datetime import datetime, timedelta

from gpubot.core.clock import Clock
from gpubot.core.mig import CudaDevices, cuda_devices
from gpubot.core.models import ClaimStatus, NoticeKind, OutboxItem
from gpubot.core.ports import ClaimStore

_FIRST_RETRY = timedelta(seconds=2)
_LONGEST_RETRY = timedelta(minutes=5)
# A sender holds a notice this long: a little longer than one delivery may take (the sender bounds each),
# so a notice whose sender died is retried within it (a lease of minutes would make such DMs minutes late).
DEFAULT_LEASE = timedelta(seconds=20)
# After an attempt whose outcome is unknown (time-out, connection lost, Slack's own internal error), wait
# at least this long before looking in the DM and trying again: Slack may still be posting the first.
AMBIGUOUS_RETRY = timedelta(seconds=30)


def retry_delay(attempts: int, retry_after: timedelta | None) -> timedelta:
    """Exponential back-off from 2 s to 5 min; Slack's own Retry-After wins when it asks for longer."""
    backoff = min(_FIRST_RETRY * (2 ** max(attempts, 0)), _LONGEST_RETRY)
    return max(backoff, retry_after) if retry_after is not None else backoff


def stale_reason(item: OutboxItem, now: datetime) -> str | None:
    """Why a notice no longer means anything and is dropped rather than sent; None while it does.

    A warning is only worth sending while its claim is active, not yet at its end, and still under the
    warning it announces: an extension clears `warned_at`, and a later warning moves it past the notice.
    A claim's confirmation is worth sending while the claim is active. Releases and expiries always are.
    """
    claim = item.claim
    kind = item.notice.kind
    if kind is NoticeKind.CLAIMED and claim.status is not ClaimStatus.ACTIVE:
        return "the claim ended before its confirmation went out"
    if kind is NoticeKind.EXPIRY_WARNING:
        if claim.status is not ClaimStatus.ACTIVE:
            return "the claim ended before its warning went out"
        if claim.ends_at <= now:
            return "the claim reached its end before its warning went out"
        if claim.warned_at is None or (item.created_at is not None and claim.warned_at > item.created_at):
            return "the claim was extended after this warning was queued"
    return None


class Outbox:
    """The queue of DMs gpubot owes people. Rows are written with the change they report; this drains them.

    Every settlement names the lease it was taken under: a sender whose lease ran out (and was taken
    over by another) changes nothing. Only "Slack accepted it" is recorded whoever holds the lease.
    """

    def __init__(self, store: ClaimStore, clock: Clock, lease: timedelta = DEFAULT_LEASE) -> None:
        self._store = store
        self._clock = clock
        self._lease = lease

    def take_due(self, limit: int = 50) -> list[OutboxItem]:
        """Notices due now, leased to this sender: another daemon on the database skips them for a while.

        A DM can be duplicated only if the process dies between Slack accepting it and `delivered`
        recording that, and the next sender's look in the DM (see `OutboxItem.unsettled_since`) misses it.
        """
        now = self._clock.now()
        return self._store.lease_notices(now, now + self._lease, limit)

    def time_left(self, item: OutboxItem) -> timedelta:
        """How much longer this sender holds `item`; a send that may take longer must not start."""
        if item.leased_until is None:
            return timedelta(0)
        return item.leased_until - self._clock.now()

    def stale_reason(self, item: OutboxItem) -> str | None:
        """Why `item` no longer means anything, now; None while it does."""
        return stale_reason(item, self._clock.now())

    def cuda_devices(self, item: OutboxItem) -> CudaDevices:
        """What CUDA_VISIBLE_DEVICES takes for the notice's claim: a whole MIG card's lists its slices' UUIDs."""
        return cuda_devices((item.claim,), self._store.list_gpus(item.claim.host))

    def delivered(self, item: OutboxItem) -> None:
        """Slack accepted the DM."""
        self._store.mark_notice_sent(item.id, self._clock.now())

    def failed(
        self,
        item: OutboxItem,
        error: str,
        retry_after: timedelta | None = None,
        *,
        unsettled_since: datetime | None = None,
    ) -> bool:
        """Delivery failed; schedule the next attempt. False when this sender no longer held it.

        Args:
            item: the notice, as leased by this sender.
            error: why it failed, kept with the notice for `gpubot doctor` and the logs.
            retry_after: how long Slack asked to wait (a rate limit), if it did.
            unsettled_since: when an attempt that may have reached Slack began (the answer was lost);
                None when Slack said no to every attempt. Such a notice waits at least `AMBIGUOUS_RETRY`.
        """
        now = self._clock.now()
        delay = retry_delay(item.attempts, retry_after)
        if unsettled_since is not None:
            delay = max(delay, AMBIGUOUS_RETRY)
        return self._store.defer_notice(item.id, now + delay, error, lease=item.lease, unsettled_since=unsettled_since)

    def postponed(self, item: OutboxItem, until: datetime, reason: str) -> bool:
        """Not tried this time (a rate limit on a call it needs, too little lease left): no attempt counted."""
        return self._store.defer_notice(
            item.id, until, reason, lease=item.lease, unsettled_since=item.unsettled_since, count_attempt=False
        )

    def given_up(self, item: OutboxItem, reason: str) -> bool:
        """Never to be sent: undeliverable for good, or no longer meaningful."""
        return self._store.abandon_notice(item.id, self._clock.now(), reason, lease=item.lease)
