"""The Slack events handled and the Home tabs open, as transactions of `SqlClaimStore`, which inherits them from here.

Every daemon on the database shares them: which one first records an event is decided by the primary key (``INSERT
... ON CONFLICT DO NOTHING``, the same on SQLite and PostgreSQL), not by any process's memory.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Insert, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite

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
        self, user_id: str, event_id: str | None, now: datetime, forget_before: datetime | None = None
    ) -> bool:
        """Record that the person opened their Home tab, unless this event was recorded already (Slack's retry).

        Args:
            user_id: who opened it.
            event_id: Slack's id of the event; None: it cannot be told from a retry, so it is recorded.
            now: when.
            forget_before: also forget, in the same transaction, the events handled and the Home tabs last
                opened before this.

        Returns:
            True when this call recorded it; False when the event was recorded already, by any daemon.

        Raises:
            StoreBusy: the database stayed locked.
            ValueError: a time is naive.
        """
        require_aware(now=now, **({} if forget_before is None else {"forget_before": forget_before}))
        first, opened = _STATEMENTS[self._engine.dialect.name]
        with self._writing() as write:
            if event_id is not None and write.execute(first, {"event": event_id, "at": now}).first() is None:
                return False
            write.execute(opened, {"user": user_id, "at": now})
            if forget_before is not None:
                write.execute(delete(tables.handled_events).where(tables.handled_events.c.handled_at < forget_before))
                write.execute(delete(tables.home_viewers).where(tables.home_viewers.c.opened_at < forget_before))
        return True

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
