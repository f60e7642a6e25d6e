"""The DM outbox's and the people's transactions of `SqlClaimStore`, which inherits them from here."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, literal, select, update

from gpubot.core.models import OutboxItem, Person
from gpubot.storage import rows, tables
from gpubot.storage.rows import require_aware
from gpubot.storage.tables import UtcDateTime
from gpubot.storage.transactions import SqlTransactions

# A delivery error is kept for operators; a whole HTML error page is not useful there.
_MAX_ERROR_CHARS = 2000


class OutboxTransactions(SqlTransactions):
    """Leasing and settling queued DMs, and the display names of people (see `SqlTransactions` for Args)."""

    def lease_notices(self, now: datetime, lease_until: datetime, limit: int = 50) -> list[OutboxItem]:
        """Take due notices for delivery, pushing their next attempt to `lease_until` in the same transaction.

        Args:
            now: the current time.
            lease_until: when a notice this sender fails to settle becomes due again.
            limit: at most this many.

        Each notice gets a new lease token: only a settlement that names it applies, so a sender whose
        lease ran out and was taken over cannot defer or give up what the new holder is sending. A notice
        is marked unsettled from `now` (unless an earlier attempt already was): if this sender dies before
        settling it, the next one knows that a post may have reached Slack.

        Returns:
            The notices this caller now holds, each with its claim as it is now, its lease, and when an
            earlier attempt that may have reached Slack began (None when none may have).

        Raises:
            StoreBusy: the database stayed locked.
        """
        require_aware(now=now, lease_until=lease_until)
        token = uuid.uuid4().hex
        # Most calls find nothing due (the sender is woken after every claim change, and polls): a read that
        # says so costs a fraction of a write transaction, which would also queue behind every writer.
        with self._reading() as connection:
            if connection.execute(rows.ANY_DUE_NOTICE, {"now": now}).first() is None:
                return []
        query = (
            rows.DUE_NOTICES_OLDEST_FIRST.limit(limit)
            # PostgreSQL: a concurrent sender skips rows this one holds; SQLite's BEGIN IMMEDIATE already
            # serialises the two transactions.
            .with_for_update(of=tables.outbox, skip_locked=True)
        )
        with self._writing() as write:
            leased = [
                replace(rows.to_outbox_item(row), lease=token, leased_until=lease_until)
                for row in write.execute(query, {"now": now})
            ]
            if leased:
                write.execute(
                    update(tables.outbox)
                    .where(tables.outbox.c.id.in_([item.id for item in leased]))
                    .values(
                        next_attempt_at=lease_until,
                        lease=token,
                        unsettled_since=func.coalesce(tables.outbox.c.unsettled_since, literal(now, UtcDateTime())),
                    )
                )
            return leased

    def mark_notice_sent(self, notice_id: int, now: datetime) -> None:
        """Record that Slack accepted the notice; a notice already marked sent keeps its first time.

        Args:
            notice_id: the outbox item's id.
            now: when it was sent.

        Raises:
            StoreBusy: the database stayed locked.
            ValueError: `now` is naive.
        """
        require_aware(now=now)
        # Whoever holds the lease: Slack accepted it, which is the truth whoever sent it.
        self._update_unsent_notice(notice_id, None, sent_at=now, lease=None, unsettled_since=None)

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

        Args:
            notice_id: the outbox item's id.
            retry_at: when to try again.
            error: why it failed (kept, shortened, for operators).
            lease: apply only while this lease still holds the notice; None: whoever holds it.
            unsettled_since: when an attempt that may have reached Slack began; None when none may have.
            count_attempt: False for a postponement that was no attempt (another call's rate limit).

        Returns:
            False when nothing was changed: sent, given up, or the lease lost.

        Raises:
            StoreBusy: the database stayed locked.
            ValueError: `retry_at` is naive.
        """
        require_aware(retry_at=retry_at)
        values: dict[str, Any] = {
            "next_attempt_at": retry_at,
            "last_error": error[:_MAX_ERROR_CHARS],
            "lease": None,
            "unsettled_since": unsettled_since,
        }
        if count_attempt:
            values["attempts"] = tables.outbox.c.attempts + 1
        return self._update_unsent_notice(notice_id, lease, **values)

    def abandon_notice(self, notice_id: int, now: datetime, reason: str, *, lease: str | None = None) -> bool:
        """Give the notice up: it can never be delivered, or no longer means anything. It is not retried.

        Args:
            notice_id: the outbox item's id.
            now: the current time.
            reason: why (kept in `last_error` for operators).
            lease: apply only while this lease still holds the notice; None: whoever holds it.

        Returns:
            False when nothing was changed: sent, given up already, or the lease lost.

        Raises:
            StoreBusy: the database stayed locked.
            ValueError: `now` is naive.
        """
        require_aware(now=now)
        return self._update_unsent_notice(
            notice_id, lease, abandoned_at=now, last_error=reason[:_MAX_ERROR_CHARS], lease=None, unsettled_since=None
        )

    def _update_unsent_notice(self, notice_id: int, held_by: str | None, **values: Any) -> bool:
        # Only while open: a notice already sent or given up keeps its record.
        condition = and_(tables.outbox.c.id == notice_id, rows.OPEN_NOTICE)
        if held_by is not None:
            condition = and_(condition, tables.outbox.c.lease == held_by)
        with self._writing() as write:
            result = write.execute(update(tables.outbox).where(condition).values(**values))
            return bool(result.rowcount)

    # -- People -------------------------------------------------------------------------------------

    def people(self, user_ids: Collection[str]) -> dict[str, Person]:
        """The display names known for these users, by user ID; those never looked up are left out."""
        if not user_ids:
            return {}
        query = select(*tables.people.c).where(tables.people.c.user_id.in_(list(user_ids)))
        with self._reading() as connection:
            return {
                row.user_id: Person(row.user_id, row.display_name, row.updated_at) for row in connection.execute(query)
            }

    def people_named(self, display_name: str) -> list[Person]:
        """Everyone whose display name is `display_name`, compared without case."""
        query = select(*tables.people.c).where(func.lower(tables.people.c.display_name) == display_name.lower())
        with self._reading() as connection:
            return [Person(row.user_id, row.display_name, row.updated_at) for row in connection.execute(query)]

    def save_person(self, person: Person) -> None:
        """Record (or replace) a user's display name.

        Raises:
            ValueError: `updated_at` is naive.
            StoreBusy: the database stayed locked.
        """
        require_aware(updated_at=person.updated_at)
        row = {"user_id": person.user_id, "display_name": person.display_name, "updated_at": person.updated_at}
        # Two daemons may look the same person up at once.
        upsert = rows.upsert(
            self._engine.dialect.name, tables.people, [row], ["user_id"], ["display_name", "updated_at"]
        )
        with self._writing() as write:
            write.execute(upsert)
