"""Alembic environment for gpubot.

`gpubot.storage.migrate` runs it with a connection already inside the migration lock (passed as
``config.attributes["connection"]``). The developer CLI (``alembic upgrade head`` beside alembic.ini)
runs it with a URL: ``sqlalchemy.url`` from the config, else the ``GPUBOT_DATABASE_URL`` environment
variable, and takes the same lock itself.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import migration_lock
from gpubot.storage.tables import metadata

config = context.config
target_metadata = metadata

# Only the CLI has an ini file with logging sections; code that calls Alembic keeps its own logging.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

_CONFIGURE_OPTIONS = {
    "target_metadata": target_metadata,
    # SQLite cannot ALTER most things in place; batch mode recreates the table instead.
    "render_as_batch": True,
    "compare_type": True,
}


def _database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("GPUBOT_DATABASE_URL")
    if not url:
        raise RuntimeError("No database URL: set GPUBOT_DATABASE_URL or sqlalchemy.url in alembic.ini.")
    return url


def _run_with(connection: Connection) -> None:
    context.configure(connection=connection, **_CONFIGURE_OPTIONS)
    # A no-op transaction when the connection is already in one (it is, under migration_lock).
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Write the migration SQL to stdout (``alembic upgrade head --sql``)."""
    context.configure(url=_database_url(), literal_binds=True, **_CONFIGURE_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate through the given connection, or one built from the URL under the migration lock."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_with(connection)
        return
    engine = make_engine(_database_url())
    try:
        with engine.connect() as own_connection, migration_lock(own_connection):
            _run_with(own_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
