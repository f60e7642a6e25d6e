"""Fixtures for the storage tests: migrated SQLite files, PostgreSQL when available, and both stores.

PostgreSQL runs on a database of this run's own on the local server (see tests/postgres.py): skipped with
the reason where there is no server, failed under CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from gpubot.core.ports import ClaimStore
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import upgrade_to_head
from gpubot.storage.tables import metadata
from tests.fakes import InMemoryClaimStore
from tests.postgres import scratch_database

# Tests on PostgreSQL; the `postgres_engine` fixture skips them (or, under CI, fails them) without a server.
needs_postgres = pytest.mark.postgres


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL for a SQLite file that does not exist yet (nor does its directory)."""
    return f"sqlite:///{tmp_path / 'state' / 'gpubot.db'}"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """An engine on a SQLite file migrated to head."""
    engine = make_engine(sqlite_url)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _postgres_session_engine() -> Iterator[Engine]:
    with scratch_database() as url:
        # An empty database, so the migration under test builds everything.
        engine = make_engine(url)
        upgrade_to_head(engine)
        yield engine
        engine.dispose()


@pytest.fixture
def postgres_engine(_postgres_session_engine: Engine) -> Engine:
    """An engine on the PostgreSQL test database at head, with every table emptied."""
    names = ", ".join(table.name for table in metadata.sorted_tables)
    with _postgres_session_engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    return _postgres_session_engine


@pytest.fixture(
    params=[
        pytest.param("memory"),
        pytest.param("sqlite"),
        pytest.param("postgres", marks=needs_postgres),
    ]
)
def store(request: pytest.FixtureRequest) -> ClaimStore:
    """The same contract, three implementations: the test fake, SQLite (a real file) and PostgreSQL."""
    if request.param == "memory":
        return InMemoryClaimStore()
    if request.param == "sqlite":
        return SqlClaimStore(request.getfixturevalue("sqlite_engine"))
    return SqlClaimStore(request.getfixturevalue("postgres_engine"))
