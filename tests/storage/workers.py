"""Entry points for the child processes of test_concurrency.py.

They live in their own small module so that a spawned child imports only this (not pytest's test
module), and they report plain tuples because gpubot's errors are not meant to be pickled.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from gpubot.core.errors import AlreadyHeld
from gpubot.core.models import Gpu, NewClaim
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import upgrade_to_head

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
GPU = Gpu("node1", "GPU-RACE", 3)
BARRIER_TIMEOUT_S = 60


def claim(store: SqlClaimStore, user_id: str) -> tuple[str, ...]:
    """Claim the contested GPU; ("won", user) or ("held", holder, gpu index)."""
    try:
        [won] = store.create_claims([NewClaim(GPU, user_id, "race", NOW, NOW + timedelta(hours=1))])
    except AlreadyHeld as refused:
        return ("held", refused.holder_id, refused.gpu_label)
    return ("won", won.user_id)


def claim_in_process(url: str, user_id: str, barrier: Any, results: Any) -> None:
    """Connect, wait for every sibling at the barrier, then claim the same GPU at the same instant."""
    engine = make_engine(url)
    try:
        store = SqlClaimStore(engine)
        store.active_claims()  # connect and warm up before the barrier, so the start is even
        barrier.wait(BARRIER_TIMEOUT_S)
        results.put(claim(store, user_id))
    except Exception as exc:
        results.put(("error", repr(exc)))
    finally:
        engine.dispose()


def upgrade_in_process(url: str, barrier: Any, results: Any) -> None:
    """Wait for the sibling at the barrier, then migrate the same database."""
    try:
        barrier.wait(BARRIER_TIMEOUT_S)
        upgrade_to_head(url)
        results.put(("ok",))
    except Exception as exc:
        results.put(("error", repr(exc)))
