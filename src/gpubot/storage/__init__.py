"""Storage adapter: the core's `ClaimStore` on SQLAlchemy 2 (SQLite or PostgreSQL), and its migrations.

Migrations are in `gpubot.storage.migrate`, not re-exported here: importing this package must not import
Alembic (see that module).
"""

from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine

__all__ = ["SqlClaimStore", "make_engine"]
