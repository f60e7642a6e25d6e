"""Is the database there, writable and at the newest schema? Asked by `gpubot doctor`, which must change nothing.

Unlike `make_engine` and `upgrade_to_head`, this never creates a database or its directory: a doctor
run as root before the service ever started would otherwise leave a root-owned file the service's
own user cannot write.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from gpubot.core.errors import NoDatabase, StoreReadOnly, StoreUnavailable
from gpubot.storage import db_errors
from gpubot.storage.engine import make_engine, parse_database_url, sqlite_file
from gpubot.storage.migrate import current_revision, head_revision


@dataclass(frozen=True)
class DatabaseProbe:
    """What `probe_database` found.

    Attributes:
        location: The URL with any password hidden.
        revision: The schema revision the database is at; None for a database never migrated.
        head: The newest revision this gpubot knows.
    """

    location: str
    revision: str | None
    head: str

    @property
    def at_head(self) -> bool:
        """The database has every migration this gpubot ships: no `gpubot migrate` needed."""
        return self.revision == self.head


def missing_sqlite_file(url: str) -> str | None:
    """The location of a SQLite database file that does not exist yet; None when it exists or is no file.

    Args:
        url: GPUBOT_DATABASE_URL (or the default SQLite URL).

    Raises:
        ConfigError: the URL is malformed.
    """
    sa_url = parse_database_url(url)
    path = sqlite_file(sa_url)
    if path is not None and not path.is_file():
        return db_errors.location(sa_url)
    return None


def probe_database(url: str) -> DatabaseProbe:
    """Connect, read the schema revision, and try a write that is rolled back.

    Args:
        url: GPUBOT_DATABASE_URL (or the default SQLite URL).

    Returns:
        The location and revisions.

    Raises:
        ConfigError: the URL is malformed.
        NoDatabase: there is no SQLite file yet.
        StoreUnavailable: the database cannot be reached, or it refuses writes.
    """
    missing = missing_sqlite_file(url)
    if missing is not None:
        raise NoDatabase(str(missing))
    engine = make_engine(url)
    location = db_errors.location(engine)
    try:
        revision = current_revision(engine)
        _try_a_write(engine)
    except DBAPIError as error:
        raise StoreUnavailable(f"{location}: {db_errors.reason(error)}") from None
    finally:
        engine.dispose()
    return DatabaseProbe(location=location, revision=revision, head=head_revision())


def require_head(engine: Engine) -> None:
    """Check that the database answers and is at the newest schema, without migrating it.

    Args:
        engine: an engine from `make_engine`.

    Raises:
        StoreUnavailable: the database cannot be read, or is at another schema (the message says what to run).
    """
    location = db_errors.location(engine)
    try:
        revision = current_revision(engine)
    except DBAPIError as error:
        raise StoreUnavailable(f"cannot read the database at {location}: {db_errors.reason(error)}") from None
    head = head_revision()
    if revision != head:
        raise StoreUnavailable(
            f"the database at {location} is at schema {revision or 'none (empty)'}, this gpubot needs {head}: "
            "run `gpubot db upgrade` (or start the service, which migrates on start)"
        )


def require_writable(engine: Engine) -> None:
    """Check, at `gpubot serve`'s start, that the database accepts a write; a new SQLite file is created.

    For a SQLite file it first tries the file and its directory themselves (SQLite writes its WAL and
    shared-memory files beside the database), so the message gives the operating system's own reason,
    e.g. "Read-only file system", rather than SQLite's "unable to open database file".

    Args:
        engine: an engine from `make_engine`.

    Raises:
        StoreReadOnly: the file, its directory or the database refuses writes; the message names the
            file and the cause.
        StoreUnavailable: the database cannot be reached at all.
    """
    location = db_errors.location(engine)
    path = sqlite_file(engine.url)
    if path is not None:
        _require_writable_file(path)
    try:
        _try_a_write(engine)
    except DBAPIError as error:
        if db_errors.write_refusal(error.orig) is not None:
            raise StoreReadOnly(f"cannot write the database at {location}: {db_errors.reason(error)}") from None
        raise StoreUnavailable(f"cannot open the database at {location}: {db_errors.reason(error)}") from None


def _require_writable_file(path: Path) -> None:
    directory = path.parent
    try:
        with tempfile.TemporaryFile(dir=directory, prefix=".gpubot-write-check-"):
            pass
        if path.exists():
            with path.open("r+b"):
                pass
    except OSError as error:
        where = path if path.exists() and error.filename == str(path) else directory
        raise StoreReadOnly(f"cannot write the database {path}: {where}: {error.strerror}") from None


def _try_a_write(engine: Engine) -> None:
    # DDL is transactional on SQLite and PostgreSQL, so creating a table and rolling back writes for
    # real (taking the write lock, touching the journal) and leaves nothing behind.
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            connection.execute(text("CREATE TABLE gpubot_doctor_write_probe (id INTEGER)"))
        finally:
            transaction.rollback()
