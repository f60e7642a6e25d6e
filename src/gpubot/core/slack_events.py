"""Slack's events handled once across daemons, and whose Home tab to republish, kept in the shared store.

Slack hands a retried event to any live connection of the app, so which events were handled, and who opened their
Home tab, must be known to every daemon on the database, not held in one process's memory.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from gpubot.core.clock import Clock
from gpubot.core.models import HomeOpen
from gpubot.core.ports import SlackEventStore

# Slack retries an event within minutes; a Home tab not opened for a day is not worth a republish.
KEEP = timedelta(days=1)
# Old rows are pruned on a Home open at most this often: the tables stay small without a job of their own.
PRUNE_EVERY = timedelta(hours=1)
# Slack's event ids are short; a longer one is no id the store could keep.
MAX_EVENT_ID_CHARS = 255


class SlackEvents:
    """Home opens recorded once per event, and the people whose Home tab is open.

    Safe to share between threads: the prune time is one assignment, and a prune done twice does no harm.

    Args:
        store: where every daemon records them.
        clock: the time of each record.
        keep: how long an event is remembered, and a Home tab counts as open after it was opened.
    """

    def __init__(self, store: SlackEventStore, clock: Clock, keep: timedelta = KEEP) -> None:
        self._store = store
        self._clock = clock
        self._keep = keep
        self._next_prune_at: datetime | None = None

    def home_opened(self, opens: Sequence[tuple[str, object]]) -> list[str]:
        """Record that these people opened their Home tab, in one transaction, each event once across daemons.

        Args:
            opens: who opened it, and the event's `event_id` as Slack sent it (anything but a short string cannot
                be told from a retry, so counts as new).

        Returns:
            Whose Home tab to publish, each once, in order: those whose event no daemon had handled before.

        Raises:
            StoreBusy: the database stayed locked.
        """
        if not opens:
            return []
        now = self._clock.now()
        forget_before = None
        if self._next_prune_at is None or now >= self._next_prune_at:
            forget_before = now - self._keep
        recorded = [HomeOpen(user_id, _usable(event_id)) for user_id, event_id in opens]
        new = self._store.home_opened(recorded, now, forget_before)
        if forget_before is not None:
            self._next_prune_at = now + PRUNE_EVERY
        return list(dict.fromkeys(opened.user_id for opened, first in zip(recorded, new, strict=True) if first))

    def home_viewers(self, user_ids: Collection[str]) -> frozenset[str]:
        """Those of these people whose Home tab is open (opened within the time kept), through any daemon."""
        if not user_ids:
            return frozenset()
        return frozenset(self._store.home_viewers(user_ids, self._clock.now() - self._keep))


def _usable(event_id: object) -> str | None:
    return event_id if isinstance(event_id, str) and 0 < len(event_id) <= MAX_EVENT_ID_CHARS else None
