"""make_engine's SQLite settings, the UtcDateTime column type and busy handling, on real SQLite files."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError

from gpubot.core.errors import StoreBusy
from gpubot.core.models import Gpu, NewClaim
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import BUSY_TIMEOUT_MS, make_engine, read_only
from gpubot.storage.tables import UtcDateTime

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)


def test_sqlite_pragmas_and_parent_directory(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "gpubot.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "busy_timeout", "foreign_keys")
            }
    finally:
        engine.dispose()

    assert path.parent.is_dir()
    assert pragmas == {"journal_mode": "wal", "busy_timeout": BUSY_TIMEOUT_MS, "foreign_keys": 1}


def test_foreign_keys_are_enforced(sqlite_engine: Engine) -> None:
    with pytest.raises(IntegrityError, match="FOREIGN KEY"), sqlite_engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO claim_events (claim_id, kind, at, detail) VALUES (42, 'claimed', '2026-01-01', '{}')"
        )


def _hold_write_lock(url: str) -> sqlite3.Connection:
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_writes_begin_immediate_and_reads_do_not_wait(sqlite_engine: Engine) -> None:
    holder = _hold_write_lock(str(sqlite_engine.url))
    try:
        # A read-only transaction proceeds beside a writer (WAL) ...
        with read_only(sqlite_engine).connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM claims").scalar() == 0
        # ... while a transaction that may write asks for the write lock at BEGIN and gives up after the
        # busy timeout, without having read anything it would later fail to upgrade.
        started = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked"), sqlite_engine.connect() as connection:
            connection.exec_driver_sql("SELECT count(*) FROM claims")
        waited = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()

    assert BUSY_TIMEOUT_MS / 1000 - 0.2 <= waited < 3.0


def test_locked_database_is_store_busy_inside_slacks_three_seconds(sqlite_engine: Engine) -> None:
    store = SqlClaimStore(sqlite_engine)
    gpu = Gpu("node1", "GPU-0", 0)
    holder = _hold_write_lock(str(sqlite_engine.url))
    try:
        started = time.monotonic()
        with pytest.raises(StoreBusy):
            store.create_claims([NewClaim(gpu, "U_ALICE", "p", NOW, NOW + timedelta(hours=1))])
        waited = time.monotonic() - started
        # Reads still answer while the writer holds its lock.
        assert store.active_claims() == []
    finally:
        holder.rollback()
        holder.close()

    assert waited < 3.0
    [claim] = store.create_claims([NewClaim(gpu, "U_ALICE", "p", NOW, NOW + timedelta(hours=1))])
    assert claim.user_id == "U_ALICE"


@pytest.fixture
def stamp_table(tmp_path: Path) -> tuple[Engine, Table]:
    engine = make_engine(f"sqlite:///{tmp_path / 'times.db'}")
    table = Table(
        "stamps",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("at", UtcDateTime()),
    )
    table.metadata.create_all(engine)
    return engine, table


def test_utc_datetime_stores_utc_and_returns_aware_utc(stamp_table: tuple[Engine, Table]) -> None:
    engine, table = stamp_table
    tokyo = datetime(2026, 11, 24, 18, 0, 0, 5, tzinfo=timezone(timedelta(hours=9)))
    with engine.begin() as connection:
        connection.execute(insert(table).values(at=tokyo))
    with engine.connect() as connection:
        at = connection.scalar(select(table.c.at))
        text_stored = connection.exec_driver_sql("SELECT at FROM stamps").scalar()

    assert at == tokyo
    assert at.tzinfo == timezone.utc
    assert text_stored == "2026-11-24 09:00:00.000005"


def test_utc_datetime_refuses_naive(stamp_table: tuple[Engine, Table]) -> None:
    engine, table = stamp_table
    with pytest.raises(StatementError, match="naive"), engine.begin() as connection:
        connection.execute(insert(table).values(at=datetime(2026, 11, 24, 9, 0)))
