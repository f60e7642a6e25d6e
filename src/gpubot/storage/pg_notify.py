"""PostgreSQL's change signal: LISTEN/NOTIFY on a connection of its own, for the read snapshot and the fleet.

Every committing write transaction that changes claims or GPUs runs `notify_claims` (`transactions.py`);
PostgreSQL delivers the notification at the commit, and only if the transaction commits, to every session
listening. `PgNotifications` is such a session: a thread waits on its connection and counts the
notifications of each channel. Its claims count is a `ChangeSignal`, as SQLite's data version is, so the
read snapshot is served from memory while nothing was committed; telemetry has a count (and callbacks) of
its own, so a host's sample does not throw the claims snapshot away.

A count can only say what was delivered: another process's commit is seen once its notification arrives,
the store's own commits the moment they return. While the connection is lost the signal cannot tell, so
every read goes to the database; the thread reconnects with backoff and counts the reconnection as a change
on both channels (one reload).
"""

from __future__ import annotations

import itertools
import logging
import os
import select
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, text

from gpubot.storage.change_signal import CLAIMS_CHANNEL, TELEMETRY_CHANNEL, WriteStart

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

# A silently dropped connection (a network partition) sends nothing: TCP keepalives make the kernel notice.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
_CONNECT_TIMEOUT_S = 10
# Own notifications remembered while their commit's return is awaited (or the reverse). A commit that never
# returns (its connection broke during COMMIT) would leave one behind for good: past this many, forget them
# all, which costs at most one reload.
_OWN_TOKENS_KEPT = 1000
# How long `close` waits for the listening thread.
_CLOSE_WAIT_S = 2.0
# `catch_up`'s own notifications: a marker in the delivery order, never a change.
_CATCH_UP_PREFIX = "catch-up:"
_CATCH_UP_WAIT_S = 2.0


def start_listening(engine: Engine) -> PgNotifications | None:
    """A started `PgNotifications` on `engine`'s database if it is PostgreSQL; None for SQLite (its data version).

    The caller closes it, before disposing of the engine.
    """
    if engine.dialect.name != "postgresql":
        return None
    notifications = PgNotifications(engine)
    notifications.start()
    return notifications


class PgNotifications:
    """Listens for committed changes on a PostgreSQL connection of its own: the claims `ChangeSignal`, and telemetry's.

    `start` starts the listening thread and `close` stops it; until it listens, and whenever it has lost its
    connection, `version` is None and the snapshot reads afresh.

    Args:
        engine: a PostgreSQL engine from `make_engine`: the listener connects as its pool does.
        first_retry_s: the wait before reconnecting after a failure, doubled after each one that fails.
        longest_retry_s: the longest wait between two attempts.

    Raises:
        ValueError: the engine's database is not PostgreSQL.
    """

    def __init__(self, engine: Engine, *, first_retry_s: float = 0.5, longest_retry_s: float = 30.0) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError(f"LISTEN/NOTIFY needs PostgreSQL, not {engine.dialect.name!r}")
        if not 0 < first_retry_s <= longest_retry_s:
            raise ValueError("the retry waits must be positive, the first no longer than the longest")
        arguments, options = engine.dialect.create_connect_args(engine.url)
        self._connect_arguments: list[Any] = list(arguments)
        self._connect_options: dict[str, Any] = {"connect_timeout": _CONNECT_TIMEOUT_S, **_KEEPALIVES, **options}
        self._first_retry_s = first_retry_s
        self._longest_retry_s = longest_retry_s
        self._lock = threading.Lock()
        self._listening = False
        self._version = 0
        self._telemetry_version = 0
        self._telemetry_callbacks: list[Callable[[], None]] = []
        # Tokens of this listener's own notifications: their payloads begin with its prefix.
        self._prefix = f"{uuid.uuid4().hex}:"
        self._sequence = itertools.count(1)
        self._counted_at_commit: set[str] = set()  # own commits counted on return, notification still to come
        self._arrived_first: dict[str, int] = {}  # own notifications that came before their commit's return
        self._catching_up: dict[str, threading.Event] = {}  # `catch_up` markers still on their way
        self._blindness_logged = False
        self._changed = threading.Condition(self._lock)  # notified whenever `_listening` changes
        self._stop = threading.Event()
        self._closed = False
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._run, name="gpubot-listen", daemon=True)

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start listening in a thread of its own; it connects (and reconnects) in the background."""
        self._thread.start()

    def close(self) -> None:
        """Stop listening and close the connection; from then on `version` is None. Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        os.write(self._wake_write, b"x")
        if self._thread.is_alive():
            # A connection attempt to an unreachable server is not interrupted: the thread, a daemon, ends
            # after it, and the process's exit does not wait for that.
            self._thread.join(_CLOSE_WAIT_S)
        if not self._thread.is_alive():
            os.close(self._wake_read)
            os.close(self._wake_write)

    def wait_listening(self, timeout_s: float) -> bool:
        """Wait until the listener listens, at most `timeout_s`; whether it does."""
        with self._changed:
            return self._changed.wait_for(lambda: self._listening or self._stop.is_set(), timeout_s) and (
                self._listening
            )

    def listening(self) -> bool:
        """Whether the connection is up and listening (False before `start`, after `close` or a loss)."""
        with self._lock:
            return self._listening

    # -- the claims ChangeSignal ----------------------------------------------------------------------

    def version(self) -> int | None:
        """How many claims changes were seen; None while not listening (every read then goes to the database)."""
        with self._lock:
            return self._version if self._listening else None

    def version_now(self) -> int | None:
        """`version()`, or None if another thread holds the lock this moment (the event loop never waits)."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._version if self._listening else None
        finally:
            self._lock.release()

    def write_start(self, connection: Connection) -> WriteStart | None:
        """The version now, and the token the transaction's notification will carry; None while not listening.

        On PostgreSQL a write transaction does not exclude other writers: `version_after` finds out whether
        anything else was counted between this and the commit.
        """
        with self._lock:
            if not self._listening:
                return None
            mark = next(self._sequence)
            return WriteStart(self._version, mark, f"{self._prefix}{mark}")

    def version_after(self, connection: Connection, start: WriteStart, notified: bool) -> int | None:
        """Count the store's own commit at once, and say whether it was the only change since `start`.

        Its notification is still on its way (or just arrived): counted now, so that no read after this
        returns the state before the commit, and not again when it arrives.

        Returns:
            The version of exactly `start` plus this commit; None when anything else was counted in between,
            or the listener is not listening.
        """
        with self._lock:
            if not self._listening:
                return None
            if not notified:
                return self._version if self._version == start.version else None
            counted_at = self._arrived_first.pop(start.token, None)
            if counted_at is None:
                self._version += 1
                if len(self._counted_at_commit) >= _OWN_TOKENS_KEPT:
                    self._counted_at_commit.clear()
                self._counted_at_commit.add(start.token)
                counted_at = self._version
            return counted_at if counted_at == start.version + 1 == self._version else None

    def catch_up(self, connection: Connection) -> None:
        """Return once every change committed anywhere before this call has been counted.

        Another process's commit is otherwise seen when its notification arrives, a moment later: a person who
        claims through one daemon and releases through another at once would meet the state before the claim.
        PostgreSQL delivers a session's notifications in the order their transactions committed, so this sends
        a marker of its own (committed on `connection`, a connection of the store's pool) and waits for it:
        everything committed earlier has been counted by then. Should it not come in time, the next read
        reloads anyway.
        """
        with self._lock:
            if not self._listening:
                return  # every read goes to the database meanwhile
            token = f"{_CATCH_UP_PREFIX}{uuid.uuid4().hex}"
            arrived = self._catching_up[token] = threading.Event()
        try:
            connection.execute(text("SELECT pg_notify(:channel, :token)"), {"channel": CLAIMS_CHANNEL, "token": token})
            connection.commit()
            if not arrived.wait(_CATCH_UP_WAIT_S):
                with self._lock:
                    self._version += 1
        finally:
            with self._lock:
                self._catching_up.pop(token, None)

    # -- telemetry ------------------------------------------------------------------------------------

    def telemetry_version(self) -> int | None:
        """How many telemetry notifications were seen; None while not listening (read the samples afresh)."""
        with self._lock:
            return self._telemetry_version if self._listening else None

    def on_telemetry(self, callback: Callable[[], None]) -> None:
        """Call `callback` (in the listening thread; it must not block) on each telemetry change and reconnection."""
        with self._lock:
            self._telemetry_callbacks.append(callback)

    # -- the listening thread -------------------------------------------------------------------------

    def _run(self) -> None:
        retry_s = self._first_retry_s
        while True:
            try:
                connection = self._connect()
            except Exception as error:  # whatever the driver raises, the answer is to retry later
                self._blind(error)
            else:
                retry_s = self._first_retry_s
                try:
                    self._listen(connection)
                except Exception as error:  # lost (a server restart, a terminated backend): read afresh
                    self._blind(error)
                finally:
                    with self._changed:
                        self._listening = False
                        self._changed.notify_all()
                    connection.close()
            # Not at once: a lost connection is most often a server going down, which a reconnection
            # right away would only find still down.
            if self._stop.wait(retry_s):
                return
            retry_s = min(retry_s * 2, self._longest_retry_s)

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        connection = psycopg.connect(*self._connect_arguments, **self._connect_options, autocommit=True)
        try:
            connection.execute(f"LISTEN {CLAIMS_CHANNEL}")
            connection.execute(f"LISTEN {TELEMETRY_CHANNEL}")
        except BaseException:
            connection.close()
            raise
        return connection

    def _listen(self, connection: psycopg.Connection[Any]) -> None:
        # Listening from here on: whatever was committed before may be missing from memory, so count it all
        # as changed, once.
        with self._changed:
            if self._stop.is_set():
                return
            self._listening = True
            self._version += 1
            self._telemetry_version += 1
            self._counted_at_commit.clear()
            self._arrived_first.clear()
            reconnected, self._blindness_logged = self._blindness_logged, False
            self._changed.notify_all()
        if reconnected:
            logger.info("listening for database changes again")
        self._telemetry_changed()
        # poll, not select: a busy daemon's descriptors may number past select's limit.
        poller = select.poll()
        poller.register(connection.fileno(), select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        while True:
            ready = poller.poll()
            if any(descriptor == self._wake_read for descriptor, _ in ready):
                return
            # Whatever is waiting, without waiting for more; a connection gone raises here.
            for notify in connection.notifies(timeout=0):
                self._received(notify.channel, notify.payload)

    def _received(self, channel: str, payload: str) -> None:
        if channel == TELEMETRY_CHANNEL:
            with self._lock:
                self._telemetry_version += 1
            self._telemetry_changed()
            return
        with self._lock:
            if payload.startswith(_CATCH_UP_PREFIX):
                marker = self._catching_up.get(payload)
                if marker is not None:
                    marker.set()
                return  # a marker, another daemon's or ours: no change
            if payload in self._counted_at_commit:
                self._counted_at_commit.discard(payload)
                return
            self._version += 1
            if payload.startswith(self._prefix):
                if len(self._arrived_first) >= _OWN_TOKENS_KEPT:
                    self._arrived_first.clear()
                self._arrived_first[payload] = self._version

    def _telemetry_changed(self) -> None:
        with self._lock:
            callbacks = list(self._telemetry_callbacks)
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a listener's bug must not stop the notifications of every other
                logger.exception("a telemetry change callback failed")

    def _blind(self, error: BaseException) -> None:
        with self._changed:
            self._listening = False
            self._changed.notify_all()
            first, self._blindness_logged = not self._blindness_logged, True
        if first and not self._stop.is_set():
            # Once per loss: the retries that follow would say nothing new.
            logger.warning(
                "not listening for database changes (%s): every read goes to the database until reconnected",
                str(error).strip() or type(error).__name__,
            )
