"""What a test reads of any store's audit log (not a `ClaimStore` method: gpubot itself only writes the log)."""

from __future__ import annotations

import json

from sqlalchemy import select

from gpubot.core.models import EventKind
from gpubot.core.ports import ClaimStore
from gpubot.storage import tables
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import read_only
from tests.fakes import ClaimEvent, InMemoryClaimStore


def audit_log(store: ClaimStore, claim_id: int | None = None) -> list[ClaimEvent]:
    """The audit log (of one claim, or all), in the order it was written."""
    if isinstance(store, InMemoryClaimStore):
        return store.events(claim_id)
    assert isinstance(store, SqlClaimStore), store
    events = tables.claim_events
    query = select(*events.c).order_by(events.c.id)
    if claim_id is not None:
        query = query.where(events.c.claim_id == claim_id)
    with read_only(store._engine).begin() as connection:
        return [
            ClaimEvent(row.claim_id, EventKind(row.kind), row.actor_id, row.at, json.loads(row.detail))
            for row in connection.execute(query)
        ]
