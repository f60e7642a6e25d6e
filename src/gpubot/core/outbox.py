"""Delivery policy for owed DMs: what is due, and when to try again after a failure."""

from __future__ import annotations

from datetime import timedelta

from gpubot.core.clock import Clock
from gpubot.core.models import OutboxItem
from gpubot.core.ports import ClaimStore

_FIRST_RETRY = timedelta(seconds=2)
_LONGEST_RETRY = timedelta(minutes=5)
# Longer than one delivery can take (Slack's HTTP time-outs), short enough that a crash delays a DM little.
_LEASE = timedelta(minutes=2)


def retry_delay(attempts: int, retry_after: timedelta | None) -> timedelta:
    """Exponential back-off from 2 s to 5 min; Slack's own Retry-After wins when it asks for longer."""
    backoff = min(_FIRST_RETRY * (2 ** max(attempts, 0)), _LONGEST_RETRY)
    return max(backoff, retry_after) if retry_after is not None else backoff


class Outbox:
    """The queue of DMs gpubot owes people. Rows are written with the change they report; this drains them."""

    def __init__(self, store: ClaimStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def take_due(self, limit: int = 50) -> list[OutboxItem]:
        """Notices due now, leased to this sender: another daemon on the database skips them for a while.

        A sender that dies holding some gets them back after the lease: a DM can be duplicated only if
        the process dies between Slack accepting it and `delivered` recording that.
        """
        now = self._clock.now()
        return self._store.lease_notices(now, now + _LEASE, limit)

    def delivered(self, item: OutboxItem) -> None:
        """Slack accepted the DM."""
        self._store.mark_notice_sent(item.id, self._clock.now())

    def failed(self, item: OutboxItem, error: str, retry_after: timedelta | None = None) -> None:
        """Delivery failed; schedule the next attempt."""
        retry_at = self._clock.now() + retry_delay(item.attempts, retry_after)
        self._store.defer_notice(item.id, retry_at, error)
