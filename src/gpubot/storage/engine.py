"""Engine construction: SQLite tuned for a small multi-process bot, PostgreSQL as it comes."""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import ConnectionPoolEntry

from gpubot.core.errors import ConfigError, StoreReadOnly, StoreUnavailable
from gpubot.storage.db_errors import is_busy

# How long a SQLite writer waits for another writer's lock before giving up. Slack wants an answer
# within 3 s, so a locked write must fail (as StoreBusy) well inside that.
BUSY_TIMEOUT_MS = 2000

_WAL_RETRY_S = 0.01

# Execution option that marks an engine (see `read_only`) whose transactions only read.
_READ_ONLY_OPTION = "gpubot_read_only"


def make_engine(url: str) -> Engine:
    """Create the engine for a database URL.

    For SQLite this turns on WAL (readers never block the writer), a busy timeout of `BUSY_TIMEOUT_MS`,
    foreign keys, and makes every transaction that may write start with ``BEGIN IMMEDIATE``: it takes
    the write lock up front, so two writers queue on the busy timeout instead of one failing at once
    when its read lock cannot be upgraded. The database file's directory is created if missing.

    Args:
        url: a SQLAlchemy URL, e.g. ``sqlite:////var/lib/gpubot/gpubot.db`` or
            ``postgresql+psycopg://gpubot@db/gpubot``.

    Returns:
        The engine; the caller disposes of it.

    Raises:
        ConfigError: the URL is malformed (it came from GPUBOT_DATABASE_URL).
        StoreUnavailable: its driver is not installed.
        StoreReadOnly: the SQLite file's directory cannot be created.
    """
    sa_url = parse_database_url(url)
    try:
        if sa_url.get_backend_name() == "sqlite":
            return _make_sqlite_engine(sa_url)
        # Connections idle in the pool may have been closed by the server or a proxy.
        return create_engine(sa_url, pool_pre_ping=True)
    except (NoSuchModuleError, ModuleNotFoundError) as error:
        raise StoreUnavailable(
            f"no database driver for {sa_url.drivername} ({error}); for PostgreSQL install gpubot[postgres]"
        ) from None


def parse_database_url(url: str) -> URL:
    """Parse GPUBOT_DATABASE_URL.

    Raises:
        ConfigError: the URL is malformed.
    """
    try:
        return make_url(url)
    except ArgumentError:
        raise ConfigError(
            "GPUBOT_DATABASE_URL", "a SQLAlchemy URL such as sqlite:////var/lib/gpubot/gpubot.db"
        ) from None


def read_only(engine: Engine) -> Engine:
    """The same engine (same pool) for transactions that only read.

    On SQLite they begin with a plain (deferred) ``BEGIN``, so in WAL mode they never wait for a writer;
    elsewhere this changes nothing.

    Args:
        engine: an engine from `make_engine`.

    Returns:
        An engine sharing `engine`'s pool and events.
    """
    return engine.execution_options(**{_READ_ONLY_OPTION: True})


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL that names one by its path.

    None for another database, an in-memory one, or a ``file:`` URI (whose path SQLite itself parses).
    """
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def _make_sqlite_engine(url: URL) -> Engine:
    path = sqlite_file(url)
    if path is not None:
        directory = path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreReadOnly(f"cannot create the database directory {directory}: {error.strerror}") from None
    engine = create_engine(url)
    if path is not None:
        event.listen(engine, "do_connect", _OpenWithoutCreating(path))
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


class _OpenWithoutCreating:
    """Once the file has been there, later connections open it without creating it (SQLite's ``mode=rw``).

    A connection opened after the file was deleted must fail, not start an empty database in its place that
    would pass for the real one.
    """

    def __init__(self, path: Path) -> None:
        self._path = path.absolute()
        self._seen = False

    def __call__(
        self, dialect: Any, connection_record: ConnectionPoolEntry, cargs: list[Any], cparams: dict[str, Any]
    ) -> None:
        if not self._seen:
            self._seen = self._path.exists()
            if not self._seen:
                return  # the first start creates it
        cargs[:] = [f"file:{urllib.parse.quote(str(self._path))}?mode=rw"]
        cparams["uri"] = True


def _on_sqlite_connect(dbapi_connection: Any, connection_record: ConnectionPoolEntry) -> None:
    # SQLAlchemy's documented pysqlite recipe: stop the driver from issuing its own BEGIN (it would
    # issue a deferred one, and none at all before DDL) so that `_on_sqlite_begin` controls it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    # WAL is a property of the file, so this only changes anything on a new database. Switching to it
    # needs a lock that SQLite does not wait for with the busy handler: when two processes open a new
    # file at once, one of them gets "database is locked" at once. It succeeds as soon as the other
    # has switched the file, so retry briefly.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(_WAL_RETRY_S)


def _on_sqlite_begin(conn: Connection) -> None:
    options = conn.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return
    if options.get(_READ_ONLY_OPTION):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
