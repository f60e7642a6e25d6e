"""The weekly digests in the database (the core's `DigestStore` port), which `SqlClaimStore` inherits from here.

A digest is identified by the moment it fell due. A daemon takes it with a lease (an insert, or a takeover of a
lease run out), marks it as posting just before it sends it, and as posted after: a digest marked posting is
never taken again, because whether Slack got it cannot be known, and twice is worse than once missed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, update
from sqlalchemy.dialects import postgresql, sqlite

from gpubot.storage import tables
from gpubot.storage.rows import require_aware
from gpubot.storage.transactions import SqlTransactions

_digests = tables.digests


class DigestTransactions(SqlTransactions):
    """Taking, marking and recording each week's digest."""

    def take_digest(self, due_at: datetime, channel: str, lease: str, now: datetime, until: datetime) -> bool:
        """Take the digest due at `due_at` for `lease` until `until`.

        Returns:
            False if it was posted, is posting, or another daemon's lease on it still runs.

        Raises:
            StoreBusy: the database stayed locked.
        """
        require_aware(due_at=due_at, now=now, until=until)
        row = {"due_at": due_at, "channel": channel, "lease": lease, "leased_until": until}
        # DO NOTHING rather than catching the conflict: every daemon asks every minute of the due day, and
        # PostgreSQL would log each conflict as an error.
        dialect = self._engine.dialect.name
        first = (postgresql if dialect == "postgresql" else sqlite).insert(_digests).values(row)
        with self._writing() as write:
            taking = first.on_conflict_do_nothing(index_elements=["due_at"]).returning(_digests.c.due_at)
            if write.execute(taking).first() is not None:
                return True
        # Taken before, by this daemon or another: a takeover only once its lease ran out.
        takeover = (
            update(_digests)
            .where(
                _digests.c.due_at == due_at,
                _digests.c.posted_at.is_(None),
                _digests.c.posting_since.is_(None),
                or_(_digests.c.leased_until.is_(None), _digests.c.leased_until < now),
            )
            .values(lease=lease, leased_until=until, channel=channel)
        )
        with self._writing() as write:
            return write.execute(takeover).rowcount == 1

    def digest_posting(self, due_at: datetime, lease: str, now: datetime) -> bool:
        """Mark it as being sent under `lease`; False when the lease was lost (another daemon took it over)."""
        marking = (
            update(_digests)
            .where(
                _digests.c.due_at == due_at,
                _digests.c.lease == lease,
                _digests.c.posting_since.is_(None),
                _digests.c.posted_at.is_(None),
            )
            .values(posting_since=now)
        )
        with self._writing() as write:
            return write.execute(marking).rowcount == 1

    def digest_posted(self, due_at: datetime, lease: str, now: datetime, message_ts: str) -> None:
        """Record it as posted, with its message's timestamp."""
        done = (
            update(_digests)
            .where(_digests.c.due_at == due_at, _digests.c.lease == lease)
            .values(posted_at=now, message_ts=message_ts, lease=None, leased_until=None)
        )
        with self._writing() as write:
            write.execute(done)

    def digest_not_posted(self, due_at: datetime, lease: str) -> None:
        """Slack refused it, so it was not posted: a later try may take it once the lease runs out."""
        undo = (
            update(_digests)
            .where(and_(_digests.c.due_at == due_at, _digests.c.lease == lease, _digests.c.posted_at.is_(None)))
            .values(posting_since=None)
        )
        with self._writing() as write:
            write.execute(undo)
