"""Fixtures for the storage tests: migrated SQLite files, PostgreSQL when available, and both stores.

PostgreSQL runs only when GPUBOT_TEST_POSTGRES_URL names a database the tests may wipe, for example
``postgresql+psycopg://postgres@127.0.0.1:5432/gpubot_test``.
"""

from __future__ import annotations

import os
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

POSTGRES_URL = os.environ.get("GPUBOT_TEST_POSTGRES_URL")

needs_postgres = pytest.mark.skipif(not POSTGRES_URL, reason="set GPUBOT_TEST_POSTGRES_URL to run on PostgreSQL")


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
    assert POSTGRES_URL is not None
    engine = make_engine(POSTGRES_URL)
    # Start from an empty database, so the migration under test builds everything.
    with engine.begin() as connection:
        metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
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
