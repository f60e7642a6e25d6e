"""What a test inspects of any store's outbox without leasing anything (not a `ClaimStore` method)."""

from __future__ import annotations

from datetime import datetime

from gpubot.core.models import OutboxItem
from gpubot.core.ports import ClaimStore
from gpubot.storage import rows
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import read_only
from tests.fakes import InMemoryClaimStore


def pending_notices(store: ClaimStore, now: datetime, limit: int = 50) -> list[OutboxItem]:
    """Unsent notices whose next attempt is due, oldest first, each with its claim as it is now."""
    if isinstance(store, InMemoryClaimStore):
        return store.pending_notices(now, limit)
    assert isinstance(store, SqlClaimStore), store
    rows.require_aware(now=now)
    with read_only(store._engine).begin() as connection:
        return [
            rows.to_outbox_item(row)
            for row in connection.execute(rows.DUE_NOTICES_OLDEST_FIRST.limit(limit), {"now": now})
        ]
