"""What a database error means, told by its error code rather than its message, and where a database is.

SQLite's driver carries the result code (`sqlite_errorcode`, whose low byte is the primary code) and
psycopg the SQLSTATE (`sqlstate`), so no message text is matched here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from gpubot.core.errors import StoreBusy, StoreReadOnly

# SQLite's primary result codes (https://sqlite.org/rescode.html); the sqlite3 module names them only
# from Python 3.11.
_BUSY, _LOCKED, _READONLY, _IOERR, _FULL, _CANTOPEN = 5, 6, 8, 10, 13, 14
_SQLITE_BUSY = frozenset({_BUSY, _LOCKED})
_READ_ONLY = "it is read-only"
_DISK_FULL = "the disk is full"
# Why a database cannot be written, by SQLite primary result code (int) or PostgreSQL SQLSTATE (str);
# None: the driver's own message says it best.
_REFUSALS: dict[int | str, str | None] = {
    _READONLY: _READ_ONLY,
    _CANTOPEN: _READ_ONLY,
    _FULL: _DISK_FULL,
    _IOERR: None,
    "25006": _READ_ONLY,  # read_only_sql_transaction
    "53100": _DISK_FULL,  # disk_full
    "58030": None,  # io_error
}


def location(database: URL | Engine) -> str:
    """A database's URL with any password hidden: the form every message names it in."""
    url = database.url if isinstance(database, Engine) else database
    return url.render_as_string(hide_password=True)


def reason(error: DBAPIError) -> str:
    """The driver's own message for an error SQLAlchemy wrapped."""
    return str(error.orig) if error.orig is not None else str(error)


def is_busy(error: BaseException | None) -> bool:
    """Whether a driver error is SQLite giving up on a lock it waited for (a retry may succeed)."""
    return _sqlite_code(error) in _SQLITE_BUSY


def write_refusal(error: BaseException | None) -> str | None:
    """Why the database cannot be written, if that is what a driver error means (no retry helps).

    Returns:
        A plain cause ("the disk is full", "it is read-only", else the driver's message); None for an
        error that means something else.
    """
    code = _sqlite_code(error)
    key = code if code is not None else getattr(error, "sqlstate", None)
    if key not in _REFUSALS:
        return None
    return _REFUSALS[key] or str(error)


@contextmanager
def as_store_errors() -> Iterator[None]:
    """Turn a busy or unwritable database into the core's errors.

    SQLite gives up after its busy timeout; the person waiting in Slack gets "try again", not a trace. A
    database that cannot be written (a file system remounted read-only, a full disk) gets a reply that
    says so, instead of "Something went wrong".

    Raises:
        StoreBusy: a lock was waited for in vain.
        StoreReadOnly: the database refuses writes.
    """
    try:
        yield
    except DBAPIError as exc:
        if is_busy(exc.orig):
            raise StoreBusy() from exc
        cause = write_refusal(exc.orig)
        if cause is not None:
            raise StoreReadOnly(
                f"gpubot cannot write its claims database ({cause}); nothing was changed. Please tell the admin."
            ) from exc
        raise


def _sqlite_code(error: BaseException | None) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None  # extended codes keep the primary one in the low byte
