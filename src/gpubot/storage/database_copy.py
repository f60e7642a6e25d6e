"""Moving up from one host: a one-host SQLite database copied into a fleet's empty PostgreSQL, ids and all.

Every table of the schema is copied (claims, their history, the outbox with what was sent and what is owed,
people, and whatever else the schema holds), in one transaction on the target, with each id kept so that
the claim ids in DM buttons already posted still name their claims; PostgreSQL's sequences are then moved
past them, so the next claim gets the next id.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Table, func, insert, inspect, literal_column, select, table, text, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from gpubot.core.errors import CopyRefused, NoDatabase, StoreUnavailable
from gpubot.storage import db_errors, tables
from gpubot.storage.change_signal import notify_claims
from gpubot.storage.engine import make_engine, parse_database_url, read_only
from gpubot.storage.migrate import current_revision, upgrade_to_head
from gpubot.storage.preflight import missing_sqlite_file
from gpubot.storage.tables import SCHEMA_REVISION, metadata

# Rows read and written at a time: a long history never sits in memory whole.
_CHUNK_ROWS = 1000
# Alembic's own table: the target's says which schema it has, and is no data to copy.
_VERSION_TABLE = "alembic_version"


@dataclass(frozen=True)
class TableCopied:
    """One table copied, and how many rows it held."""

    name: str
    rows: int


@dataclass(frozen=True)
class CopyReport:
    """What a copy did: from where (passwords hidden), to where, and each table's rows."""

    source: str
    target: str
    tables: tuple[TableCopied, ...]


def copy_database(source_url: str, target_url: str) -> CopyReport:
    """Copy the SQLite database at `source_url` into the empty PostgreSQL database at `target_url`.

    The target is first brought to the newest schema (created if it has no tables); then, in one transaction that
    locks every table against other writers, each table's rows are copied with their ids, and each id sequence is
    moved past the highest id copied.

    Args:
        source_url: the one-host database (GPUBOT_DATABASE_URL, or the default SQLite file).
        target_url: the fleet's PostgreSQL database.

    Returns:
        Where from and where to, and each table of the schema with the rows copied into it, in the order copied.

    Raises:
        ConfigError: `source_url` is malformed.
        NoDatabase: the source SQLite file does not exist.
        CopyRefused: the source is not SQLite or not at the newest schema, the target is not PostgreSQL, or the
            target holds a row in any table; nothing was changed.
        StoreUnavailable: either database cannot be opened, or the copy failed (the target's rows unchanged).
    """
    source_location = _require_sqlite(parse_database_url(source_url))
    target = _target_url(target_url)
    missing = missing_sqlite_file(source_url)
    if missing is not None:
        raise NoDatabase(missing)
    source_engine = make_engine(source_url)
    try:
        with _errors_of(source_location, "read"):
            revision = current_revision(source_engine)
        if revision != SCHEMA_REVISION:
            raise CopyRefused(
                f"the database at {source_location} is at schema {revision or 'none (empty)'}, this gpubot's is "
                f"{SCHEMA_REVISION}: run `gpubot db upgrade` first, then copy"
            )
        target_engine = make_engine(target.render_as_string(hide_password=False))
        try:
            copied = _copy(source_engine, target_engine)
        finally:
            target_engine.dispose()
    finally:
        source_engine.dispose()
    return CopyReport(source_location, db_errors.location(target), tuple(copied))


def _require_sqlite(url: URL) -> str:
    location = db_errors.location(url)
    if url.get_backend_name() != "sqlite":
        raise CopyRefused(
            f"the database configured here ({location}) is not a SQLite file: there is no one-host database to copy"
        )
    return location


def _target_url(target_url: str) -> URL:
    example = "e.g. postgresql+psycopg://gpubot@db.example.org/gpubot"
    try:
        url = make_url(target_url)
    except ArgumentError:
        raise CopyRefused(f"the target is not a database URL ({example})") from None
    if url.get_backend_name() != "postgresql":
        raise CopyRefused(f"the target must be a PostgreSQL database ({example}), not {url.get_backend_name()}")
    return url


def _copy(source: Engine, target: Engine) -> list[TableCopied]:
    target_location = db_errors.location(target)
    # Checked before migrating, so that a refused target is left exactly as it was.
    with _errors_of(target_location, "read"), target.connect() as connection:
        _require_empty(connection, target_location)
    upgrade_to_head(target)
    with (
        _errors_of(target_location, "copy into"),
        read_only(source).connect() as reading,
        reading.begin(),  # one read transaction: every table as of one moment
        target.begin() as writing,
    ):
        names = ", ".join(writing.dialect.identifier_preparer.quote(t.name) for t in metadata.sorted_tables)
        # Another gpubot already pointed at the target waits until the copy is in, or its first write fails it.
        writing.execute(text(f"LOCK TABLE {names} IN EXCLUSIVE MODE"))
        _require_empty(writing, target_location)
        copied = [TableCopied(t.name, _copy_rows(reading, writing, t)) for t in metadata.sorted_tables]
        for copied_table in metadata.sorted_tables:
            _continue_ids(writing, copied_table)
        # The one host's service is stopped for the copy: its name is free for the first fleet process to take.
        writing.execute(update(tables.hosts).values(instance=None))
        # A daemon already listening on the target reloads what it holds in memory.
        notify_claims(writing)
    return copied


def _require_empty(connection: Connection, location: str) -> None:
    for name in inspect(connection).get_table_names():
        if name == _VERSION_TABLE:
            continue
        if connection.execute(select(literal_column("1")).select_from(table(name)).limit(1)).first() is not None:
            raise CopyRefused(
                f"the database at {location} is not empty (table {name} has rows): copy only into a new, empty "
                "database; nothing was changed"
            )


def _copy_rows(reading: Connection, writing: Connection, copied: Table) -> int:
    order = list(copied.primary_key.columns)
    rows = reading.execution_options(yield_per=_CHUNK_ROWS).execute(select(copied).order_by(*order))
    count = 0
    for chunk in rows.partitions():
        writing.execute(insert(copied), [dict(row._mapping) for row in chunk])
        count += len(chunk)
    return count


def _continue_ids(writing: Connection, copied: Table) -> None:
    column = copied.autoincrement_column
    if column is None:
        return
    sequence = func.pg_get_serial_sequence(copied.name, column.name)
    writing.execute(select(func.setval(sequence, func.coalesce(func.max(column), 0) + 1, False)))


@contextmanager
def _errors_of(location: str, doing: str) -> Iterator[None]:
    try:
        yield
    except DBAPIError as error:
        raise StoreUnavailable(
            f"cannot {doing} the database at {location}, so nothing was copied: {db_errors.reason(error)}"
        ) from None
