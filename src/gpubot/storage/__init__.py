"""Storage adapter: the core's `ClaimStore` on SQLAlchemy 2 (SQLite or PostgreSQL), and its migrations."""

from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import current_revision, head_revision, is_at_head, upgrade_to_head

__all__ = [
    "SqlClaimStore",
    "current_revision",
    "head_revision",
    "is_at_head",
    "make_engine",
    "upgrade_to_head",
]
