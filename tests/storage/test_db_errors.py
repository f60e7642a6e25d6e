"""Database errors are told apart by their codes, and every write reports what it changed through `Write`."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, text, update
from sqlalchemy.exc import OperationalError

from gpubot.core.errors import StoreBusy, StoreReadOnly
from gpubot.storage import rows, tables
from gpubot.storage.db_errors import as_store_errors, is_busy, location, write_refusal
from gpubot.storage.engine import make_engine, parse_database_url
from gpubot.storage.transactions import Write

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"pg error {sqlstate}")
        self.sqlstate = sqlstate


def test_a_real_sqlite_lock_is_busy_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as raised:
            waiter.execute("BEGIN IMMEDIATE")
    finally:
        waiter.close()
        holder.close()
    assert is_busy(raised.value) and write_refusal(raised.value) is None


def test_a_real_read_only_sqlite_database_is_a_refusal(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        with pytest.raises(sqlite3.OperationalError) as raised:
            reader.execute("INSERT INTO t VALUES (1)")
    finally:
        reader.close()
    assert write_refusal(raised.value) == "it is read-only" and not is_busy(raised.value)


@pytest.mark.parametrize(
    ("sqlstate", "cause"), [("25006", "it is read-only"), ("53100", "the disk is full"), ("58030", "pg error 58030")]
)
def test_postgres_refusals_by_sqlstate(sqlstate: str, cause: str) -> None:
    assert write_refusal(_PgError(sqlstate)) == cause


def test_other_errors_mean_nothing_special() -> None:
    assert write_refusal(_PgError("23505")) is None and not is_busy(_PgError("55P03"))
    # The message alone no longer decides: this is not SQLite's lock.
    assert not is_busy(ValueError("database is locked")) and write_refusal(ValueError("readonly database")) is None


def test_as_store_errors_maps_by_code(sqlite_engine: Engine, tmp_path: Path) -> None:
    ro = make_engine(f"sqlite:///file:{tmp_path / 'state' / 'gpubot.db'}?mode=ro&uri=true")
    try:
        with pytest.raises(StoreReadOnly, match="it is read-only"), as_store_errors(), ro.begin() as connection:
            connection.execute(text("INSERT INTO people (user_id, display_name, updated_at) VALUES ('U', 'u', 'x')"))
    finally:
        ro.dispose()
    with pytest.raises(StoreBusy), as_store_errors():
        try:
            raise sqlite3.OperationalError("anything")
        except sqlite3.OperationalError as error:
            error.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
            raise OperationalError("stmt", {}, error) from error


def test_location_hides_the_password_and_keeps_an_at_sign_in_a_path() -> None:
    assert location(parse_database_url("postgresql+psycopg://bot:secret@db/gpubot")) == (
        "postgresql+psycopg://bot:***@db/gpubot"
    )
    # The whole path (SQLAlchemy escapes the sign), not the part after it.
    assert location(parse_database_url("sqlite:////srv/team@lab/gpubot.db")) == "sqlite:////srv/team%40lab/gpubot.db"


def test_a_write_learns_what_its_statements_changed(sqlite_engine: Engine) -> None:
    def run(*statements: object) -> Write:
        with sqlite_engine.connect() as connection, connection.begin() as transaction:
            write = Write(connection)
            for statement in statements:
                write.execute(statement)  # type: ignore[arg-type]
            transaction.rollback()
        return write

    people = rows.upsert(
        "sqlite",
        tables.people,
        [{"user_id": "U", "display_name": "u", "updated_at": NOW}],
        ["user_id"],
        ["display_name"],
    )
    assert run(people).claims_written == [] and not run(people).queued_notice
    assert run(update(tables.outbox).values(lease=None)).claims_written == []
    assert run(update(tables.gpus).values(present=False)).claims_written is None  # GPUs: only a reload tells
    assert run(update(tables.claims).values(purpose="x")).claims_written is None  # claims, not via claims()
    assert run(text("DELETE FROM claims")).claims_written is None  # cannot tell
    assert run(rows.ACTIVE_CLAIMS).claims_written == []  # a read
