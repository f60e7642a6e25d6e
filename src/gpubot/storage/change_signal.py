"""How the read snapshot learns that something changed in the database: the `ChangeSignal` protocol.

SQLite files have one, `SqliteDataVersion`. PostgreSQL has `PgNotifications` (`pg_notify.py`), told of
commits by LISTEN/NOTIFY on the channels named here; where a store has neither, the snapshot is loaded
fresh for every read.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection, Engine, text

from gpubot.storage.engine import BUSY_TIMEOUT_MS

# PostgreSQL's notification channels. Claims and GPUs (what the read snapshot holds) have one; telemetry has
# its own, so a host's sample does not throw away every daemon's claims snapshot.
CLAIMS_CHANNEL = "gpubot_claims"
TELEMETRY_CHANNEL = "gpubot_telemetry"

_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


@dataclass(frozen=True)
class WriteStart:
    """Where a write transaction started, as its `ChangeSignal` sees it.

    Attributes:
        version: the signal's version the transaction's state corresponds to.
        mark: what the signal needs, after the commit, to tell that commit from others.
        token: what the transaction's notification carries, so that its own signal knows it as its own
            (PostgreSQL); empty where commits are seen without one.
    """

    version: int
    mark: int
    token: str = ""


class ChangeSignal(Protocol):
    """A database's version number: two equal values mean that nothing was committed in between.

    On PostgreSQL, nothing whose notification has arrived: another process's commit counts once it has (at once
    on a live connection), the store's own commits the moment they return.
    """

    def version(self) -> int | None:
        """The current version; may wait briefly (e.g. for a lock). None while it cannot tell: read afresh."""
        ...

    def version_now(self) -> int | None:
        """The current version if it can be had without waiting; None otherwise (an event loop asks)."""
        ...

    def write_start(self, connection: Connection) -> WriteStart | None:
        """Inside a write transaction, before it changes anything: the version of the state it starts from.

        On SQLite the transaction excludes every other writer; on PostgreSQL it does not, and `version_after`
        tells whether anything else was committed meanwhile.

        Returns:
            None when it cannot tell; the write then goes on, and the next read reloads.
        """
        ...

    def version_after(self, connection: Connection, start: WriteStart, notified: bool) -> int | None:
        """After that transaction committed: the version of exactly `start` plus its commit.

        Args:
            connection: the writing connection, its transaction committed.
            start: from `write_start`.
            notified: whether the transaction sent `notify_claims` with `start.token`.

        Returns:
            None when another commit may have landed as well, or it cannot tell. Never raises: the
            transaction is committed, and its caller must hear that it was.
        """
        ...


class SqliteDataVersion:
    """A SQLite file's ``PRAGMA data_version``, read on a connection of its own that never writes.

    The pragma's value changes whenever a connection *other than the one asking* has committed (in this
    process or any other). Asked on a connection that never writes, every commit to the file, from the
    pool, the host CLI or a second daemon, changes it; the check is cheap enough to make on every read
    (see BENCHMARKS.md, 'What was changed to meet the targets').
    """

    def __init__(self, engine: Engine) -> None:
        """Open the dedicated connection through `engine` (same file, same connect options).

        Args:
            engine: a file-based SQLite engine from `make_engine`.
        """
        proxied = engine.raw_connection()
        proxied.detach()  # ours for good: never handed out by the pool, so it never writes
        # The sqlite3 connection itself: the pool's proxy would add its own overhead to every check.
        self._connection: sqlite3.Connection = proxied.dbapi_connection  # type: ignore[assignment]
        self._lock = threading.Lock()
        weakref.finalize(self, proxied.close)

    def version(self) -> int:
        """The current data version; two equal values mean no commit happened in between."""
        with self._lock:
            row = self._connection.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def version_now(self) -> int | None:
        """`version()` if it can be read without waiting, else None: for the event loop, which must never block.

        It waits for nothing: not for another thread reading it, nor for SQLite's busy handler (the read
        lock a data version needs can be held up by another connection's WAL recovery).
        """
        if not self._lock.acquire(blocking=False):
            return None
        try:
            self._connection.execute("PRAGMA busy_timeout = 0")
            try:
                row = self._connection.execute("PRAGMA data_version").fetchone()
            except sqlite3.OperationalError:
                return None
            finally:
                self._connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        finally:
            self._lock.release()
        return int(row[0])

    def write_start(self, connection: Connection) -> WriteStart | None:
        """The version now, and the writing connection's own data version.

        The transaction holds SQLite's write lock, so no commit can land until it commits: the version
        read now says exactly which state it sees.
        """
        try:
            return WriteStart(self.version(), _data_version(connection))
        except sqlite3.Error:
            return None

    def version_after(self, connection: Connection, start: WriteStart, notified: bool) -> int | None:
        """The version after the commit, if the commit was the only one since `start`.

        The version changes with every commit but not by one per commit, so it cannot tell ours from
        ours-and-another's. The writing connection can: its own data version changes only when *another*
        connection commits, so if it is unchanged after the version was read, that version is exactly
        `start` plus this transaction.
        """
        try:
            version = self.version()
            if _data_version(connection) != start.mark:
                return None  # another commit landed
        except sqlite3.Error:
            return None  # e.g. SQLite's busy timeout on the read lock
        return version


def change_signal(engine: Engine) -> ChangeSignal | None:
    """The change signal of a SQLite file (its data version); None for any other database.

    An in-memory SQLite database is private to each connection. PostgreSQL has no such counter: its signal
    is a listener of its own (`PgNotifications`), which a daemon starts and hands to its store.
    """
    database = engine.url.database or ""
    if engine.dialect.name != "sqlite" or database in ("", ":memory:") or "mode=memory" in str(engine.url):
        return None
    return SqliteDataVersion(engine)


def notify_claims(connection: Connection, token: str = "") -> None:
    """Tell every listener that claims or GPUs changed, when the transaction `connection` is in commits.

    PostgreSQL delivers the notification at the commit, and only if the transaction commits.

    Args:
        connection: a PostgreSQL connection inside the writing transaction.
        token: `WriteStart.token`, by which the writer's own listener knows the notification as its own.
    """
    connection.execute(_NOTIFY, {"channel": CLAIMS_CHANNEL, "payload": token})


def notify_telemetry(connection: Connection) -> None:
    """Tell every listener that a host's telemetry changed, when the transaction `connection` is in commits.

    Call it inside the transaction that writes a sample (PostgreSQL only): listeners of the telemetry
    channel hear it; the claims snapshot does not.

    Args:
        connection: a PostgreSQL connection inside the writing transaction.
    """
    connection.execute(_NOTIFY, {"channel": TELEMETRY_CHANNEL, "payload": ""})


def _data_version(connection: Connection) -> int:
    # On the DBAPI connection itself: through SQLAlchemy, a statement after the commit would begin a
    # transaction (BEGIN IMMEDIATE, see engine.py). The driver is in autocommit, so this begins none.
    row = connection.connection.driver_connection.execute("PRAGMA data_version").fetchone()  # type: ignore[union-attr]
    return int(row[0])
