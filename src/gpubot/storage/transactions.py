"""`SqlTransactions`: how every store method gets its transaction, and the `Write` each write goes through."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, Executable, Insert, Select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import UpdateBase

from gpubot.core.errors import StoreBusy
from gpubot.core.models import Claim, Gpu
from gpubot.storage import rows, tables
from gpubot.storage.change_signal import change_signal, notify_claims, notify_telemetry
from gpubot.storage.db_errors import as_store_errors
from gpubot.storage.engine import BUSY_TIMEOUT_MS, read_only
from gpubot.storage.fifo_lock import FifoLock
from gpubot.storage.file_identity import FileIdentity
from gpubot.storage.pg_notify import PgNotifications
from gpubot.storage.snapshot import ReadSnapshot, Snapshot

_SUPPORTED_DIALECTS = ("sqlite", "postgresql")


class Write:
    """One write transaction. Its statements go through here, so it knows what they changed.

    What it learns decides, after the commit, whether the read snapshot can be patched and whether the DM
    sender is woken: no write method has to say so itself, and none can say it wrong.
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        # Whether rows must be locked to serialise writers: SQLite's write transaction already excludes them all.
        self.locks_rows = connection.dialect.name != "sqlite"
        self.dialect = connection.dialect.name
        self._claims: list[Claim] = []
        self._reload = False
        self.queued_notice = False

    def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    ) -> CursorResult[Any]:
        """Run a statement that writes no claims (claims go through `claims`); a list of parameters runs it for each."""
        if not isinstance(statement, Select):
            table = statement.table if isinstance(statement, UpdateBase) else None
            if table is tables.outbox and isinstance(statement, Insert):
                self.queued_notice = True
            elif table is None or table is tables.claims or table is tables.gpus:
                self._reload = True  # the snapshot's data, changed in a way only a reload can see
        return self._connection.execute(statement, parameters)

    def telemetry_written(self) -> None:
        """Say this transaction wrote a host's sample: PostgreSQL listeners of the telemetry channel hear it."""
        if self._connection.dialect.name == "postgresql":
            notify_telemetry(self._connection)

    def claims(self, statement: Executable, parameters: Mapping[str, Any]) -> list[Claim]:
        """Run a statement that writes claims and returns every column of each (``RETURNING``).

        Returns:
            The claims it wrote, as they are now.
        """
        written = [rows.to_claim(row) for row in self._connection.execute(statement, parameters)]
        self._claims.extend(written)
        return written

    @property
    def claims_written(self) -> list[Claim] | None:
        """Every claim written, as it is now; None when GPUs (or claims some other way) changed too."""
        return None if self._reload else self._claims

    @property
    def changed_snapshot_data(self) -> bool:
        """Whether it wrote anything the read snapshot holds (claims, GPUs), or may have."""
        return self._reload or bool(self._claims)


class SqlTransactions:
    """Transactions on a SQL database migrated to head, and the read snapshot they keep current.

    On PostgreSQL every transaction that changes claims or GPUs notifies the listeners (`notify_claims`), so
    every daemon's snapshot hears of it; a store reads from a snapshot there only when given a listener.

    Args:
        engine: from `gpubot.storage.engine.make_engine`; SQLite or PostgreSQL.
        on_notice_queued: called, in the writing thread, after a transaction that queued a DM committed,
            so the sender can deliver it at once instead of at its next poll.
        notifications: PostgreSQL only: a started listener on `engine`'s database, which keeps the read
            snapshot current; without one, every read goes to the database (the host CLI's one-off calls).

    Raises:
        ValueError: the engine's database is neither SQLite nor PostgreSQL, or `notifications` is given for
            SQLite.
    """

    def __init__(
        self,
        engine: Engine,
        on_notice_queued: Callable[[], None] = lambda: None,
        notifications: PgNotifications | None = None,
    ) -> None:
        if engine.dialect.name not in _SUPPORTED_DIALECTS:
            raise ValueError(f"unsupported database {engine.dialect.name!r}: use SQLite or PostgreSQL")
        if notifications is not None and engine.dialect.name != "postgresql":
            raise ValueError("change notifications are PostgreSQL's: SQLite has its data version")
        self._engine = engine
        self._on_notice_queued = on_notice_queued
        self._read_engine = read_only(engine)
        self._gpu_copies = rows.Copies(rows.to_gpu)
        self._claim_copies = rows.Copies(rows.to_claim)
        self._notifies = engine.dialect.name == "postgresql"
        self._reads = ReadSnapshot(self._load_snapshot, notifications or change_signal(engine))
        self._notifications = notifications
        # SQLite has one writer at a time. This process's writers queue here, and the next one starts the moment the
        # previous one commits; on SQLite's busy handler alone they would poll with sleeps of up to 100 ms (see
        # BENCHMARKS.md, 'What was changed to meet the targets'). Not a source of truth: other processes still queue on
        # the busy timeout, and the unique index decides races.
        self._writer_turn = FifoLock() if engine.dialect.name == "sqlite" else None
        # Every write checks first that the SQLite file is still the one opened.
        self._file = FileIdentity.of(engine)

    def check_file(self) -> None:
        """Check that the SQLite file is still the one opened (a no-op for any other database).

        Raises:
            StoreReplaced: it was deleted or replaced; from then on, every time.
        """
        if self._file is not None:
            self._file.check()

    def catch_up(self) -> None:
        """Make the next reads see every change committed anywhere before this call.

        SQLite's data version is read before every read, so its reads always do; on PostgreSQL another process's
        commit is seen when its notification arrives, so this waits for a marker sent behind it (see
        `PgNotifications.catch_up`). Called before a change reads what it changes.

        Raises:
            StoreBusy: the database did not answer.
        """
        if self._notifications is None:
            return
        with as_store_errors(), self._engine.connect() as connection:
            self._notifications.catch_up(connection)

    def answering_from_memory(self) -> AbstractContextManager[bool]:
        """Whether the hot reads can be answered now, from memory, with no database call that could wait.

        The hot reads are `list_gpus`, `active_claims`, `claims_to_warn` and `claims_past_end` (see
        `ReadSnapshot.pinned`).

        While it yields True, those reads in this context are served from the snapshot it found current,
        and any other database call raises, so the caller may make them on an event loop. False on
        PostgreSQL without a listener or while it is not listening, before the first load, after a commit, or
        when the commit counter cannot be read at once.

        Raises:
            RuntimeError: (inside the block) a call that needs the database.
        """
        return self._reads.pinned()

    def _snapshot(self) -> Snapshot:
        return self._reads.current()

    def _load_snapshot(self) -> tuple[list[Gpu], list[Claim]]:
        with self._reading() as connection:
            gpu_rows = connection.execute(rows.PRESENT_GPUS).all()
            claim_rows = connection.execute(rows.ACTIVE_CLAIMS).all()
        return self._gpu_copies(gpu_rows), self._claim_copies(claim_rows)

    @contextmanager
    def _writing(self) -> Iterator[Write]:
        # One transaction that may write: BEGIN IMMEDIATE on SQLite (see engine.py), committed on exit.
        self._reads.refuse_if_pinned()
        self.check_file()
        with self._turn_to_write(), as_store_errors(), self._connected(self._engine) as connection:
            with connection.begin():
                pending = self._reads.write_started(connection)
                write = Write(connection)
                yield write
                self.check_file()  # once more before the commit confirms it: rolled back if the file went
                # Delivered at the commit, and only if it commits.
                notified = self._notifies and write.changed_snapshot_data
                if notified:
                    notify_claims(connection, pending.token)
            self._reads.write_committed(pending, write.claims_written, connection, notified)
        if write.queued_notice:
            self._on_notice_queued()

    @contextmanager
    def _connected(self, engine: Engine) -> Iterator[Connection]:
        try:
            connection = engine.connect()
        except DBAPIError:
            self.check_file()  # a deleted or replaced file is named as such, not as a failed open
            raise
        with connection:
            yield connection

    @contextmanager
    def _turn_to_write(self) -> Iterator[None]:
        if self._writer_turn is None:
            yield
            return
        # As long as SQLite itself would wait for another process's lock, then "busy".
        if not self._writer_turn.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
            raise StoreBusy()
        try:
            yield
        finally:
            self._writer_turn.release()

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        self._reads.refuse_if_pinned()
        # A new connection to a deleted SQLite file would create an empty one in its place.
        self.check_file()
        with as_store_errors(), self._connected(self._read_engine) as connection, connection.begin():
            yield connection
