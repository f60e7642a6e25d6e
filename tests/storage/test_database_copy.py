"""`gpubot db copy`: a one-host SQLite database copied into PostgreSQL row for row, ids continuing; refusals change
nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, select, text

from gpubot.core.errors import CopyRefused, NoDatabase, StoreUnavailable
from gpubot.core.models import (
    ClaimStatus,
    EventKind,
    Gpu,
    HomeOpen,
    HostRole,
    NewClaim,
    Notice,
    NoticeKind,
    Person,
)
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.database_copy import copy_database
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import alembic_config, current_revision, upgrade_to_head
from gpubot.storage.tables import SCHEMA_REVISION, metadata
from tests.postgres import scratch_database
from tests.storage.conftest import needs_postgres

pytestmark = needs_postgres

# Longer than the test takes: a name reported within it counts as live.
HOUR_OUT = timedelta(hours=1)

NOW = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=timezone.utc)
HOST = "box"
GPUS = [
    Gpu(HOST, "GPU-0", 0, "NVIDIA H100"),
    Gpu(HOST, "GPU-1", 1, "NVIDIA H100"),
    Gpu(HOST, "GPU-CARD", 2, "NVIDIA A100"),
    Gpu(HOST, "MIG-0001", 2, "NVIDIA A100", mig_index=1, parent_uuid="GPU-CARD", mig_profile="3g.40gb"),
]


def claim(store: SqlClaimStore, gpu: Gpu, user_id: str, hours: float = 2, *, confirm: bool = False) -> int:
    new = NewClaim(gpu, user_id, f"{user_id}'s run ✨", NOW, NOW + timedelta(hours=hours))
    [made] = store.create_claims([new], confirm_by_dm=confirm)
    return made.id


def populate(store: SqlClaimStore) -> None:
    """Claims active and ended, their events, DMs sent, owed and given up, people, a Home open."""
    store.sync_gpus(HOST, GPUS, NOW)
    store.sync_gpus(HOST, GPUS[1:], NOW + timedelta(minutes=1))  # GPU 0 gone: a row no longer present
    store.sync_gpus(HOST, GPUS, NOW + timedelta(minutes=2))
    released = claim(store, GPUS[0], "U_ANN", confirm=True)
    store.end_claim(released, ClaimStatus.RELEASED, EventKind.RELEASED, "U_ANN", NOW + timedelta(minutes=5))
    expired = claim(store, GPUS[1], "U_BOB", hours=1)
    store.mark_warned(expired, NOW + timedelta(minutes=50), Notice(NoticeKind.EXPIRY_WARNING, "U_BOB", expired))
    store.end_claim(
        expired,
        ClaimStatus.EXPIRED,
        EventKind.EXPIRED,
        None,
        NOW + timedelta(hours=1),
        Notice(NoticeKind.EXPIRED, "U_BOB", expired),
    )
    active = claim(store, GPUS[3], "U_CAT", confirm=True)  # a MIG slice
    store.extend_claim(active, NOW + timedelta(hours=3), "U_CAT", NOW + timedelta(minutes=10))
    claim(store, GPUS[1], "U_DAN")
    leased = store.lease_notices(NOW + timedelta(hours=2), NOW + timedelta(hours=2, seconds=20))
    store.mark_notice_sent(leased[0].id, NOW + timedelta(hours=2))
    store.defer_notice(leased[1].id, NOW + timedelta(hours=3), "ratelimited", lease=leased[1].lease)
    store.abandon_notice(leased[2].id, NOW + timedelta(hours=2), "user_not_found", lease=leased[2].lease)
    store.save_person(Person("U_ANN", "Ann Example", NOW))
    store.save_person(Person("U_BOB", "Bob <!channel>", NOW))
    store.home_opened([HomeOpen("U_CAT", "Ev0001")], NOW)


def every_row(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as connection:
        return {
            table.name: [
                dict(row._mapping) for row in connection.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in metadata.sorted_tables
        }


@pytest.fixture
def source_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'gpubot.db'}"
    engine = make_engine(url)
    try:
        upgrade_to_head(engine)
        populate(SqlClaimStore(engine))
    finally:
        engine.dispose()
    return url


@pytest.fixture
def new_postgres() -> Iterator[str]:
    """A new PostgreSQL database without any table, as an operator creates one for the fleet."""
    with scratch_database() as url:
        yield url


def test_every_row_is_copied_with_its_id_and_the_ids_continue(source_url: str, new_postgres: str) -> None:
    report = copy_database(source_url, new_postgres)

    source, target = make_engine(source_url), make_engine(new_postgres)
    try:
        expected = every_row(source)
        assert current_revision(target) == SCHEMA_REVISION
        assert every_row(target) == expected
        assert {copied.name: copied.rows for copied in report.tables} == {
            name: len(rows) for name, rows in expected.items()
        }
        assert [copied.name for copied in report.tables] == [table.name for table in metadata.sorted_tables]
        assert expected["claims"] and expected["claim_events"] and expected["outbox"] and expected["people"]
        assert {row["status"] for row in expected["claims"]} == {"active", "released", "expired"}
        outbox = expected["outbox"]
        assert any(row["sent_at"] for row in outbox) and any(not row["sent_at"] for row in outbox)
        assert report.source.endswith("gpubot.db") and "postgresql" in report.target

        # The fleet carries on where the host left off: the next ids follow the copied ones.
        store = SqlClaimStore(target)
        assert claim(store, GPUS[0], "U_EVE", confirm=True) == max(row["id"] for row in expected["claims"]) + 1
        after = every_row(target)
        assert after["claim_events"][-1]["id"] == max(row["id"] for row in expected["claim_events"]) + 1
        assert after["outbox"][-1]["id"] == max(row["id"] for row in outbox) + 1
        # An upsert draws a sequence value for each row it tries, so a new GPU's id is past the copied ones, not next.
        store.sync_gpus(HOST, [*GPUS, Gpu(HOST, "GPU-NEW", 3)], NOW)
        [new_gpu] = [row for row in every_row(target)["gpus"] if row["uuid"] == "GPU-NEW"]
        assert new_gpu["id"] > max(row["id"] for row in expected["gpus"])
        # The copied claims are the store's claims: the active ones hold their GPUs.
        assert {c.user_id for c in store.active_claims(HOST)} == {"U_CAT", "U_DAN", "U_EVE"}
    finally:
        source.dispose()
        target.dispose()


def test_a_second_copy_is_refused_and_changes_nothing(source_url: str, new_postgres: str) -> None:
    copy_database(source_url, new_postgres)
    target = make_engine(new_postgres)
    try:
        before = every_row(target)
        with pytest.raises(CopyRefused, match=r"not empty .*nothing was changed"):
            copy_database(source_url, new_postgres)
        assert every_row(target) == before
    finally:
        target.dispose()


def test_a_target_with_a_row_in_any_table_is_refused_before_it_is_migrated(source_url: str, new_postgres: str) -> None:
    target = make_engine(new_postgres)
    try:
        with target.begin() as connection:
            connection.execute(text("CREATE TABLE notes (body TEXT)"))
            connection.execute(text("INSERT INTO notes VALUES ('mine')"))

        with pytest.raises(CopyRefused, match="table notes has rows"):
            copy_database(source_url, new_postgres)

        assert inspect(target).get_table_names() == ["notes"]  # not migrated either
    finally:
        target.dispose()


def test_an_empty_target_at_the_newest_schema_is_copied_into(source_url: str, postgres_engine: Engine) -> None:
    # The fleet's database may have been created already (by `gpubot db upgrade` or a first serve).
    report = copy_database(source_url, postgres_engine.url.render_as_string(hide_password=False))
    assert sum(copied.rows for copied in report.tables) > 0


def test_a_source_behind_the_newest_schema_is_refused_and_the_target_left_alone(
    source_url: str, new_postgres: str
) -> None:
    source = make_engine(source_url)
    try:
        with source.begin() as connection:
            command.downgrade(alembic_config(connection), "-1")
    finally:
        source.dispose()

    with pytest.raises(CopyRefused, match="run `gpubot db upgrade` first"):
        copy_database(source_url, new_postgres)

    target = make_engine(new_postgres)
    try:
        assert inspect(target).get_table_names() == []
    finally:
        target.dispose()


def test_a_missing_source_file_is_named(tmp_path: Path, new_postgres: str) -> None:
    with pytest.raises(NoDatabase, match=r"nothing-here\.db"):
        copy_database(f"sqlite:///{tmp_path / 'nothing-here.db'}", new_postgres)
    assert not (tmp_path / "nothing-here.db").exists()


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("sqlite:////tmp/fleet.db", "must be a PostgreSQL database"),
        ("not a url at all :/", "not a database URL"),
    ],
)
def test_a_target_that_is_not_postgres_is_refused(source_url: str, target: str, fragment: str) -> None:
    with pytest.raises(CopyRefused, match=fragment):
        copy_database(source_url, target)


def test_a_source_that_is_not_sqlite_is_refused(postgres_engine: Engine, new_postgres: str) -> None:
    with pytest.raises(CopyRefused, match="not a SQLite file"):
        copy_database(postgres_engine.url.render_as_string(hide_password=False), new_postgres)


def test_a_copy_that_fails_midway_leaves_no_row_behind(source_url: str, new_postgres: str) -> None:
    # SQLite does not hold a name to its column's length; PostgreSQL refuses it, after the claims went in.
    source = make_engine(source_url)
    try:
        SqlClaimStore(source).save_person(Person("U_LONG", "n" * 300, NOW))
    finally:
        source.dispose()

    with pytest.raises(StoreUnavailable, match="nothing was copied"):
        copy_database(source_url, new_postgres)

    target = make_engine(new_postgres)
    try:
        assert all(rows == [] for rows in every_row(target).values())
    finally:
        target.dispose()


def test_the_copied_hosts_name_is_free_for_the_first_fleet_process(source_url: str, new_postgres: str) -> None:
    # The one host's service held its name in the SQLite file; it is stopped for the copy, so the fleet's
    # first process on that machine must not wait out the host time-out for a name nobody holds.
    now = datetime.now(timezone.utc)
    source = make_engine(source_url)
    try:
        SqlClaimStore(source).register_host("gpu-box", HostRole.SERVE, "old-service", "pid 1 on gpu-box", now, HOUR_OUT)
    finally:
        source.dispose()

    copy_database(source_url, new_postgres)

    target = make_engine(new_postgres)
    try:
        (copied,) = SqlClaimStore(target).hosts()
        assert (copied.name, copied.role, copied.holder) == ("gpu-box", HostRole.SERVE, None)
        SqlClaimStore(target).register_host("gpu-box", HostRole.AGENT, "fleet-agent", "pid 2 on gpu-box", now, HOUR_OUT)
    finally:
        target.dispose()
