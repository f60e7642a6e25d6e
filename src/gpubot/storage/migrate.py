"""Schema migrations: Alembic driven from code, safe when several processes start at once.

The migration scripts live in the repository's top-level ``alembic/`` and ship inside the wheel as
``gpubot/_alembic`` (see ``[tool.hatch.build.targets.wheel.force-include]`` in pyproject.toml).

Alembic is imported only where a migration runs or the scripts are read: importing it costs memory that stays for the
life of the process, and a database at `tables.SCHEMA_REVISION` (every start but the first after an upgrade) needs none
of it. `gpubot serve` goes further with `migrate_apart`: when there is a migration to run, a short-lived child process
runs it (see BENCHMARKS.md, 'What was changed to meet the targets').

A database with no tables at all needs no script: it gets the tables' own DDL and is stamped at the newest revision in
one transaction, as Alembic's cookbook builds a new database ("Building an Up to Date Database from Scratch"), without
importing Alembic. The scripts, which a test holds to the same schema, take it on from there.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Column, Connection, Engine, MetaData, PrimaryKeyConstraint, String, Table, inspect, text
from sqlalchemy.exc import DatabaseError, InterfaceError

from gpubot.core.errors import StoreUnavailable
from gpubot.storage import db_errors
from gpubot.storage.engine import BUSY_TIMEOUT_MS, make_engine, read_only
from gpubot.storage.tables import SCHEMA_REVISION, metadata

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

# Key of the PostgreSQL advisory lock that serialises migrations ("gpub" in ASCII). Any constant
# works as long as every gpubot process uses the same one.
MIGRATION_LOCK_KEY = 0x67707562

# How long a starting process waits on SQLite for another one to finish migrating. Migrations take well
# under a second on an empty database; this covers a slow disk or a large future data migration.
_SQLITE_MIGRATION_WAIT_MS = 60_000

# Where Alembic records the revision (its default name, which env.py keeps).
_VERSION_TABLE = "alembic_version"

# That table as Alembic itself creates it (`alembic.runtime.migration.MigrationContext`), kept apart from the
# schema's metadata: stamping a new database writes it, and the scripts read it afterwards.
_version_table = Table(
    _VERSION_TABLE,
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


def script_location() -> Path:
    """Where the Alembic scripts are: inside the installed wheel, else the source checkout's ``alembic/``.

    Returns:
        The directory holding ``env.py`` and ``versions/``.

    Raises:
        FileNotFoundError: neither location holds the scripts (a broken install).
    """
    packaged = resources.files("gpubot") / "_alembic"
    candidates: list[Path] = []
    if isinstance(packaged, Path):
        candidates.append(packaged)
    # src/gpubot/storage/migrate.py -> the repository root, for editable installs and source checkouts.
    candidates.append(Path(__file__).resolve().parents[3] / "alembic")
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("gpubot's Alembic scripts are missing; looked in " + ", ".join(str(c) for c in candidates))


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic `Config` built in code (no alembic.ini needed).

    Args:
        connection: the connection env.py migrates through; None lets env.py build its own.

    Returns:
        The configuration.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_to_head(engine_or_url: Engine | str) -> None:
    """Migrate the database to the newest revision; a no-op, without Alembic, when it is there already.

    Safe when several processes call it at once: on SQLite the upgrade runs in one transaction opened
    with ``BEGIN IMMEDIATE``, so the others wait for the write lock and then find the schema at head;
    on PostgreSQL the transaction first takes an advisory lock, with the same effect. Either way the
    DDL is transactional, so a failed upgrade leaves the schema as it was.

    Args:
        engine_or_url: an engine from `make_engine`, or a URL to build (and dispose of) one from.
    """
    if isinstance(engine_or_url, str):
        engine = make_engine(engine_or_url)
        try:
            _upgrade(engine)
        finally:
            engine.dispose()
    else:
        _upgrade(engine_or_url)


def migrate_apart(engine: Engine) -> None:
    """`upgrade_to_head` for a long-running process: any migration runs in a child process.

    The child imports Alembic and exits; this process only reads the revision. The database's URL goes
    to the child on its stdin, since a command line is visible to every user of the host.

    Args:
        engine: the database's engine, from `make_engine`.

    Raises:
        StoreUnavailable: the database cannot be opened, or the child failed to migrate it (its last
            line of error output says why).
    """
    if not _needs_scripts(engine):
        return
    child = subprocess.run(
        [sys.executable, "-m", __name__],
        input=engine.url.render_as_string(hide_password=False),
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        lines = child.stderr.strip().splitlines()
        reason = lines[-1] if lines else f"exit status {child.returncode}"
        raise StoreUnavailable(f"migrating the database at {db_errors.location(engine)} failed: {reason}")
    logger.info("migrated the database at %s to revision %s", db_errors.location(engine), SCHEMA_REVISION)


def _upgrade(engine: Engine) -> None:
    if not _needs_scripts(engine):
        return
    from alembic import command

    with _as_store_errors(engine), engine.connect() as connection, migration_lock(connection):
        command.upgrade(alembic_config(connection), "head")


def _needs_scripts(engine: Engine) -> bool:
    """Whether the database needs the migration scripts run: it is behind, and was not created new just now."""
    if _at_schema_revision(engine):
        return False
    if create_if_empty(engine):
        logger.info("created the database at %s at revision %s", db_errors.location(engine), SCHEMA_REVISION)
        return False
    # A sibling process may have created or migrated it while this one waited for the lock.
    return not _at_schema_revision(engine)


def create_if_empty(engine: Engine) -> bool:
    """Give a database without any table the newest schema and stamp it, in one transaction under the migration lock.

    Args:
        engine: the database's engine, from `make_engine`.

    Returns:
        True if it was empty and now is at `SCHEMA_REVISION`; False if it has tables (its own, Alembic's, or ones a
        sibling process created meanwhile), which this leaves alone.

    Raises:
        StoreUnavailable: the database cannot be opened or written.
    """
    with _as_store_errors(engine), engine.connect() as connection, migration_lock(connection):
        if inspect(connection).get_table_names():
            return False
        metadata.create_all(connection)
        _version_table.create(connection)
        connection.execute(_version_table.insert().values(version_num=SCHEMA_REVISION))
    return True


def _at_schema_revision(engine: Engine) -> bool:
    # A revision only moves forward, so a committed one at head stays there: no lock needed to see it.
    with _as_store_errors(engine):
        return current_revision(engine) == SCHEMA_REVISION


@contextmanager
def _as_store_errors(engine: Engine) -> Iterator[None]:
    try:
        yield
    except (DatabaseError, InterfaceError) as error:
        # Bad path, permissions, server down: say so in one line rather than with a traceback.
        raise StoreUnavailable(
            f"cannot open or migrate the database at {db_errors.location(engine)}: {db_errors.reason(error)}"
        ) from None


@contextmanager
def migration_lock(connection: Connection) -> Iterator[None]:
    """Open the migration transaction on `connection`, holding the lock every gpubot process migrates under.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE`` (see `make_engine`): the database's write
    lock is the migration lock, and a waiting process's busy timeout is raised for the duration so it
    waits for its sibling instead of failing. On PostgreSQL it takes ``pg_advisory_xact_lock``, released
    when the transaction ends. The transaction commits when the block exits normally.

    Args:
        connection: a connection from `make_engine`'s engine, not in a transaction.

    Yields:
        Nothing; migrate through `connection` inside the block.
    """
    is_sqlite = connection.dialect.name == "sqlite"
    if is_sqlite:
        # Waiting longer than a Slack request would is right here: this is start-up, and giving up
        # would crash a process that only had to wait for its sibling's migration.
        _set_sqlite_busy_timeout(connection, _SQLITE_MIGRATION_WAIT_MS)
    try:
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            yield
    finally:
        if is_sqlite:
            # The connection goes back to the pool; later users expect the normal timeout.
            _set_sqlite_busy_timeout(connection, BUSY_TIMEOUT_MS)


def _set_sqlite_busy_timeout(connection: Connection, timeout_ms: int) -> None:
    # Through the driver's cursor: a statement on `connection` itself would autobegin the transaction
    # (and, with engine.py's listener, take the write lock before the timeout is raised).
    cursor = connection.connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
    finally:
        cursor.close()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at.

    Args:
        engine: the database's engine.

    Returns:
        The revision id, or None for a database never migrated (no ``alembic_version`` table or row).

    Raises:
        RuntimeError: the version table holds several revisions (branches gpubot never makes).
    """
    # Alembic's own table, read without Alembic (see the module's docstring).
    with read_only(engine).connect() as connection:
        if not inspect(connection).has_table(_VERSION_TABLE):
            return None
        revisions = list(connection.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalars())
    if len(revisions) > 1:
        raise RuntimeError(f"the database is at several revisions at once ({', '.join(revisions)}); expected one")
    return revisions[0] if revisions else None


def head_revision() -> str:
    """The newest revision the shipped migration scripts know.

    Returns:
        Its revision id.

    Raises:
        RuntimeError: the scripts have no revision at all (a broken install).
    """
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration scripts found in {script_location()}")
    return head


if __name__ == "__main__":
    # `migrate_apart`'s child: the URL on stdin, the reason for a failure as the last line of stderr.
    try:
        upgrade_to_head(sys.stdin.read().strip())
    except StoreUnavailable as failure:
        sys.exit(str(failure))
