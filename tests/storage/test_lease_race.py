"""Senders of several daemons leasing DMs at the same moment on PostgreSQL: each notice is leased exactly once.

``FOR UPDATE SKIP LOCKED`` lets each sender pass over the rows another one is leasing instead of waiting for them,
and never hands one row to two senders.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine

from gpubot.core.models import Gpu, NewClaim
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from tests.storage.conftest import needs_postgres

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
NOTICES = 120
SENDERS = 6
BATCH = 7


def queue_notices(store: SqlClaimStore) -> None:
    gpus = [Gpu("box", f"GPU-{i}", i) for i in range(NOTICES)]
    store.sync_gpus("box", gpus, NOW)
    claims = [NewClaim(gpu, f"U{gpu.index}", "train", NOW, NOW + timedelta(hours=1)) for gpu in gpus]
    store.create_claims(claims, confirm_by_dm=True)  # one confirmation DM each


@needs_postgres
def test_senders_on_their_own_connections_lease_each_notice_exactly_once(postgres_engine: Engine) -> None:
    queue_notices(SqlClaimStore(postgres_engine))
    url = postgres_engine.url.render_as_string(hide_password=False)
    engines = [make_engine(url) for _ in range(SENDERS)]
    barrier = threading.Barrier(SENDERS)

    def sender(engine: Engine) -> list[int]:
        store = SqlClaimStore(engine)
        leased: list[int] = []
        barrier.wait(10)
        while batch := store.lease_notices(NOW, NOW + timedelta(minutes=1), limit=BATCH):
            leased.extend(item.id for item in batch)
        return leased

    try:
        with ThreadPoolExecutor(max_workers=SENDERS) as pool:
            by_sender = list(pool.map(sender, engines))
    finally:
        for engine in engines:
            engine.dispose()

    times_leased = Counter(notice_id for leased in by_sender for notice_id in leased)
    assert sorted(times_leased) == list(range(1, NOTICES + 1))
    assert set(times_leased.values()) == {1}, [notice_id for notice_id, n in times_leased.items() if n > 1]
    # Nothing is left due: a sender that found nothing skipped only rows another one held.
    assert SqlClaimStore(postgres_engine).lease_notices(NOW, NOW + timedelta(minutes=1)) == []
