"""A PostgreSQL database of this test run's own, on the server the machine runs (or skip, or fail in CI).

The server is ``GPUBOT_TEST_POSTGRES_SERVER`` (a SQLAlchemy URL of any database on it, default
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``). Each run creates a fresh database there and
drops it at the end, so runs never share state. Where no server answers, the tests that need one skip with
the reason; with ``CI`` set they fail instead, since CI's machine runs one and a skip would hide a regression.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    return os.environ.get("GPUBOT_TEST_POSTGRES_SERVER", DEFAULT_SERVER)


def unavailable_reason() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it can."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(server_url(), connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        return f"no PostgreSQL server at {engine.url.render_as_string(hide_password=True)}: {error.__cause__ or error}"
    finally:
        engine.dispose()
    return None


def require_postgres() -> None:
    """Skip the calling test when no server answers; fail instead under CI."""
    reason = _cached_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must test on PostgreSQL, but {reason}")
    pytest.skip(reason)


_reason: list[str | None] = []


def _cached_reason() -> str | None:
    if not _reason:
        _reason.append(unavailable_reason())
    return _reason[0]


@contextmanager
def scratch_database() -> Iterator[str]:
    """Create an empty database for this run; yield its URL; drop it afterwards."""
    from sqlalchemy import create_engine, text

    require_postgres()
    name = f"gpubot_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(server_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
