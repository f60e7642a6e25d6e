"""Migrations: the hand-written scripts build exactly tables.metadata, from any starting point."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from gpubot.core.errors import StoreUnavailable
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import (
    alembic_config,
    create_if_empty,
    current_revision,
    head_revision,
    migrate_apart,
    migration_lock,
    script_location,
    upgrade_to_head,
)
from gpubot.storage.tables import SCHEMA_REVISION, metadata
from tests.postgres import scratch_database
from tests.storage.conftest import needs_postgres

REPO_ROOT = Path(__file__).resolve().parents[2]


def schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


@pytest.fixture
def empty_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


def schema_of(engine: Engine) -> dict[str, Any]:
    """Every table's columns, keys, indexes and checks as the database itself reports them.

    Broader than `compare_metadata`, which leaves out check constraints and partial indexes' conditions.
    """
    inspector = inspect(engine)
    schema: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        schema[table] = {
            "columns": sorted(
                (column["name"], str(column["type"]), column["nullable"], column.get("default"))
                for column in inspector.get_columns(table)
            ),
            "primary key": inspector.get_pk_constraint(table),
            "foreign keys": sorted(
                (key["name"], tuple(key["constrained_columns"]), key["referred_table"])
                for key in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (
                    index["name"],
                    tuple(index["column_names"]),
                    index["unique"],
                    sorted(
                        (key, " ".join(str(value).split())) for key, value in index.get("dialect_options", {}).items()
                    ),
                )
                for index in inspector.get_indexes(table)
            ),
            "unique": sorted(
                (unique["name"], tuple(unique["column_names"])) for unique in inspector.get_unique_constraints(table)
            ),
            "checks": sorted(
                (check["name"], " ".join(check["sqltext"].split())) for check in inspector.get_check_constraints(table)
            ),
        }
    return schema


def run_the_scripts(engine: Engine) -> None:
    """Every migration script in turn, from nothing, as an old database would meet them."""
    with engine.connect() as connection, migration_lock(connection):
        command.upgrade(alembic_config(connection), "head")


def test_the_scripts_from_nothing_build_exactly_the_metadata(empty_engine: Engine) -> None:
    assert current_revision(empty_engine) is None

    run_the_scripts(empty_engine)

    assert schema_differences(empty_engine) == []
    assert current_revision(empty_engine) == head_revision() == SCHEMA_REVISION


def test_an_empty_database_is_created_at_head_in_one_step_without_the_scripts(
    empty_engine: Engine, tmp_path: Path
) -> None:
    scripted = make_engine(f"sqlite:///{tmp_path / 'scripted.db'}")
    try:
        run_the_scripts(scripted)

        assert create_if_empty(empty_engine) is True

        assert schema_of(empty_engine) == schema_of(scripted)
        assert schema_differences(empty_engine) == []
        assert current_revision(empty_engine) == head_revision()
    finally:
        scripted.dispose()


def test_a_database_created_in_one_step_is_one_the_scripts_can_take_down_and_up(empty_engine: Engine) -> None:
    # The stamp is Alembic's own version table: its commands read it and move on from it.
    created = schema_of(empty_engine) if create_if_empty(empty_engine) else None
    with empty_engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert set(inspect(empty_engine).get_table_names()) == {"alembic_version"}

    upgrade_to_head(empty_engine)

    assert schema_of(empty_engine) == created


def test_a_database_with_tables_is_never_created_over(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO people (user_id, display_name, updated_at) VALUES ('U1', 'Ann', '2026-01-01')"
        )

    assert create_if_empty(sqlite_engine) is False

    with sqlite_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM people").scalar() == 1


@needs_postgres
def test_postgres_created_in_one_step_matches_the_scripts() -> None:
    with scratch_database() as created_url, scratch_database() as scripted_url:
        created, scripted = make_engine(created_url), make_engine(scripted_url)
        try:
            assert create_if_empty(created) is True
            run_the_scripts(scripted)

            assert schema_of(created) == schema_of(scripted)
            assert current_revision(created) == current_revision(scripted) == head_revision()
        finally:
            created.dispose()
            scripted.dispose()


@needs_postgres
def test_postgres_at_head_matches_the_metadata(postgres_engine: Engine) -> None:
    assert schema_differences(postgres_engine) == []
    assert current_revision(postgres_engine) == head_revision()


def test_upgrade_again_changes_nothing(sqlite_engine: Engine) -> None:
    upgrade_to_head(sqlite_engine)
    upgrade_to_head(str(sqlite_engine.url))

    assert current_revision(sqlite_engine) == head_revision()
    assert schema_differences(sqlite_engine) == []


def test_database_stamped_at_base_upgrades(empty_engine: Engine) -> None:
    # An "old" database: Alembic's version table exists but records no revision.
    with empty_engine.begin() as connection:
        command.stamp(alembic_config(connection), "base")
    assert "alembic_version" in inspect(empty_engine).get_table_names()
    assert current_revision(empty_engine) is None

    upgrade_to_head(empty_engine)

    assert current_revision(empty_engine) == head_revision()
    assert schema_differences(empty_engine) == []


def test_downgrade_to_base_and_up_again(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert set(inspect(sqlite_engine).get_table_names()) == {"alembic_version"}

    upgrade_to_head(sqlite_engine)

    assert schema_differences(sqlite_engine) == []


def test_the_tables_describe_the_newest_script() -> None:
    # The daemon skips Alembic when a database is at SCHEMA_REVISION: a new script must move it too.
    assert head_revision() == SCHEMA_REVISION


@pytest.mark.parametrize("start", ["empty", "behind"])
def test_serve_migrates_apart_and_keeps_neither_alembic_nor_the_orm(sqlite_url: str, start: str) -> None:
    # The two cost a long-running daemon memory (BENCHMARKS.md). A fresh interpreter, since this one
    # imported both long ago; a database that is new, or one that needs a script run.
    if start == "behind":
        engine = make_engine(sqlite_url)
        try:
            run_the_scripts(engine)
            with engine.begin() as connection:
                command.downgrade(alembic_config(connection), "0001")
        finally:
            engine.dispose()
    script = f"""
import sys
import gpubot.daemon.serve
from gpubot.storage import SqlClaimStore, make_engine
from gpubot.storage.migrate import current_revision, migrate_apart
engine = make_engine({sqlite_url!r})
migrate_apart(engine)
assert current_revision(engine) == "{SCHEMA_REVISION}", current_revision(engine)
SqlClaimStore(engine).active_claims()
print(sorted(name for name in sys.modules if name.split(".")[0] == "alembic" or name.startswith("sqlalchemy.orm")))
"""

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    engine = make_engine(sqlite_url)
    try:
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def test_a_migration_apart_is_logged_and_a_second_start_runs_none(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(sqlite_url)
    try:
        with caplog.at_level(logging.INFO, logger="gpubot.storage.migrate"):
            migrate_apart(engine)
            migrate_apart(engine)
        assert current_revision(engine) == SCHEMA_REVISION
    finally:
        engine.dispose()

    assert [record.getMessage() for record in caplog.records] == [
        f"created the database at {sqlite_url} at revision {SCHEMA_REVISION}"
    ]


def test_a_database_behind_is_migrated_apart_and_logged(
    sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with sqlite_engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0001")

    with caplog.at_level(logging.INFO, logger="gpubot.storage.migrate"):
        migrate_apart(sqlite_engine)

    assert current_revision(sqlite_engine) == SCHEMA_REVISION
    assert schema_differences(sqlite_engine) == []
    assert [record.getMessage() for record in caplog.records] == [
        f"migrated the database at {sqlite_engine.url} to revision {SCHEMA_REVISION}"
    ]


def test_a_migration_that_fails_apart_says_why_and_changes_nothing(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")

    with pytest.raises(StoreUnavailable, match=r"migrating the database at .* failed: .*9999"):
        migrate_apart(sqlite_engine)

    assert current_revision(sqlite_engine) == "9999"
    assert schema_differences(sqlite_engine) == []


def test_an_unreadable_database_is_reported_before_any_child_starts(tmp_path: Path) -> None:
    garbage = tmp_path / "gpubot.db"
    garbage.write_bytes(b"not an SQLite database, just text long enough to be read as one" * 20)
    engine = make_engine(f"sqlite:///{garbage}")
    try:
        with pytest.raises(StoreUnavailable, match="cannot open or migrate the database"):
            migrate_apart(engine)
    finally:
        engine.dispose()


def test_a_database_at_several_revisions_is_refused(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO alembic_version (version_num) VALUES ('0000')")

    with pytest.raises(RuntimeError, match="several revisions"):
        current_revision(sqlite_engine)


def test_the_comparison_notices_a_missing_index(sqlite_engine: Engine) -> None:
    # Guards the guard: an empty diff must mean "same schema", not "compared nothing".
    with sqlite_engine.begin() as connection:
        connection.exec_driver_sql("DROP INDEX ix_claims_one_active_per_gpu")

    differences = schema_differences(sqlite_engine)

    assert [(diff[0], diff[1].name) for diff in differences] == [("add_index", "ix_claims_one_active_per_gpu")]


def test_scripts_are_found_in_the_source_checkout() -> None:
    location = script_location()

    assert (location / "env.py").is_file()
    assert (location / "versions" / "0001_initial.py").is_file()


def test_developer_cli_migrates_from_the_environment_url(sqlite_url: str) -> None:
    env = {**os.environ, "GPUBOT_DATABASE_URL": sqlite_url}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT / "src"), env.get("PYTHONPATH")]))

    result = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    engine = make_engine(sqlite_url)
    try:
        assert current_revision(engine) == head_revision()
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def test_this_machines_claims_follow_it_to_its_short_hostname(empty_engine: Engine, monkeypatch) -> None:
    # Claims were filed under socket.gethostname(), which may carry the domain; hosts are now named without it.
    with empty_engine.connect() as connection, migration_lock(connection):
        command.upgrade(alembic_config(connection), "0004_mig")
    with empty_engine.begin() as connection:
        for host in ("gpu-a.lab.example.org", "gpu-b.lab.example.org"):
            connection.exec_driver_sql(
                'INSERT INTO gpus (host, uuid, "index", present, last_seen_at) '
                f"VALUES ('{host}', 'GPU-0', 0, 1, '2026-11-26 12:00:00')"
            )
            connection.exec_driver_sql(
                "INSERT INTO claims (host, gpu_uuid, gpu_index, user_id, purpose, started_at, ends_at, status) "
                f"VALUES ('{host}', 'GPU-0', 0, 'U1', 'x', '2026-11-26 12:00:00', '2026-11-26 14:00:00', 'active')"
            )
    monkeypatch.setattr("socket.gethostname", lambda: "gpu-a.lab.example.org")

    upgrade_to_head(empty_engine)

    with empty_engine.connect() as connection:
        for table in ("gpus", "claims"):
            hosts = sorted(row[0] for row in connection.exec_driver_sql(f"SELECT host FROM {table}"))
            assert hosts == ["gpu-a", "gpu-b.lab.example.org"], table  # another machine's rows are its own business
