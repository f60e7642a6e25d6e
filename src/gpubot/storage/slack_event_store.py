"""The Slack events handled and the Home tabs open, as transactions of `SqlClaimStore`, which inherits them from here.

Every daemon on the database shares them: which one first records an event is decided by the primary key (``INSERT
... ON CONFLICT DO NOTHING``, the same on SQLite and PostgreSQL), not by any process's memory.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import Insert, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from gpubot.core.models import HomeOpen
from gpubot.storage import tables
from gpubot.storage.rows import require_aware
from gpubot.storage.tables import UtcDateTime
from gpubot.storage.transactions import SqlTransactions


def _statements(dialect: str) -> tuple[Insert, Insert]:
    # Built once per dialect: a Home open is on the path of a publish someone waits for.
    events, viewers = tables.handled_events, tables.home_viewers
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    first = (
        insert(events)
        .values(event_id=bindparam("event"), handled_at=bindparam("at", type_=UtcDateTime()))
        .on_conflict_do_nothing(index_elements=[events.c.event_id])
        .returning(events.c.event_id)
    )
    opened = insert(viewers).values(user_id=bindparam("user"), opened_at=bindparam("at", type_=UtcDateTime()))
    opened = opened.on_conflict_do_update(
        index_elements=[viewers.c.user_id], set_={"opened_at": opened.excluded.opened_at}
    )
    return first, opened


_STATEMENTS = {dialect: _statements(dialect) for dialect in ("postgresql", "sqlite")}
_VIEWERS = select(tables.home_viewers.c.user_id).where(
    tables.home_viewers.c.user_id.in_(bindparam("users", expanding=True)),
    tables.home_viewers.c.opened_at >= bindparam("since", type_=UtcDateTime()),
)


class SlackEventTransactions(SqlTransactions):
    """Home opens recorded once per Slack event, and whose Home tab is open (see `SqlTransactions` for Args)."""

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
            ValueError: a time is naive.
        """
        require_aware(now=now, **({} if forget_before is None else {"forget_before": forget_before}))
        if not opens:
            return []
        first, opened = _STATEMENTS[self._engine.dialect.name]
        # The first of a batch's deliveries of one event is the one that may count.
        firsts = {o.event_id: i for i, o in reversed(list(enumerate(opens))) if o.event_id is not None}
        with self._writing() as write:
            recorded: set[str] = set()
            if firsts:
                events = [{"event": event_id, "at": now} for event_id in firsts]
                recorded = set(write.execute(first, events).scalars())
            new = [
                o.event_id is None or (o.event_id in recorded and firsts[o.event_id] == i) for i, o in enumerate(opens)
            ]
            viewers = dict.fromkeys(o.user_id for o, is_new in zip(opens, new, strict=True) if is_new)
            if viewers:
                write.execute(opened, [{"user": user_id, "at": now} for user_id in viewers])
            if forget_before is not None:
                write.execute(delete(tables.handled_events).where(tables.handled_events.c.handled_at < forget_before))
                write.execute(delete(tables.home_viewers).where(tables.home_viewers.c.opened_at < forget_before))
        return new

    def home_viewers(self, user_ids: Collection[str], since: datetime) -> set[str]:
        """Those of these people who opened their Home tab at or after `since`.

        Raises:
            ValueError: `since` is naive.
        """
        require_aware(since=since)
        if not user_ids:
            return set()
        with self._reading() as connection:
            return set(connection.execute(_VIEWERS, {"users": list(user_ids), "since": since}).scalars())
