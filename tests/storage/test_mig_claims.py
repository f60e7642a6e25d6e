"""A MIG card's claim and its slices' claims exclude each other, in every store, under racing writers too."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, text

from gpubot.core.errors import AlreadyHeld
from gpubot.core.models import Gpu, NewClaim
from gpubot.core.ports import ClaimStore
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import alembic_config, upgrade_to_head
from tests.storage.conftest import needs_postgres

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
HOST = "node1"
CARD = Gpu(HOST, "GPU-CARD", 0, "NVIDIA A100")
SLICE1 = Gpu(HOST, "MIG-0001", 0, "NVIDIA A100", mig_index=1, parent_uuid="GPU-CARD", mig_profile="3g.40gb")
SLICE2 = Gpu(HOST, "MIG-0002", 0, "NVIDIA A100", mig_index=2, parent_uuid="GPU-CARD", mig_profile="1g.10gb")
OTHER = Gpu(HOST, "GPU-OTHER", 1, "NVIDIA A100")
THREADS = 20


def claim(store: ClaimStore, gpu: Gpu, user: str) -> None:
    store.create_claims([NewClaim(gpu, user, "train", NOW, NOW + timedelta(hours=1))])


@pytest.fixture
def mig_store(store: ClaimStore) -> ClaimStore:
    store.sync_gpus(HOST, [CARD, SLICE1, SLICE2, OTHER], NOW)
    return store


def test_slices_are_listed_after_their_card_with_their_profile(mig_store: ClaimStore) -> None:
    assert [(gpu.label, gpu.mig_profile, gpu.parent_uuid) for gpu in mig_store.list_gpus(HOST)] == [
        ("0", None, None),
        ("0.1", "3g.40gb", "GPU-CARD"),
        ("0.2", "1g.10gb", "GPU-CARD"),
        ("1", None, None),
    ]


def test_a_slice_claim_names_its_card_and_slice(mig_store: ClaimStore) -> None:
    claim(mig_store, SLICE2, "U_ALICE")
    [held] = mig_store.active_claims(HOST)
    assert (held.gpu_uuid, held.parent_gpu_uuid, held.gpu_mig_index, held.label) == ("MIG-0002", "GPU-CARD", 2, "0.2")


def test_two_slices_of_one_card_are_held_apart(mig_store: ClaimStore) -> None:
    claim(mig_store, SLICE1, "U_ALICE")
    claim(mig_store, SLICE2, "U_BOB")
    assert [c.label for c in mig_store.active_claims(HOST)] == ["0.1", "0.2"]


def test_a_held_slice_refuses_its_card(mig_store: ClaimStore) -> None:
    claim(mig_store, SLICE2, "U_ALICE")
    with pytest.raises(AlreadyHeld) as refused:
        claim(mig_store, CARD, "U_BOB")
    assert (refused.value.gpu_label, refused.value.held_label, refused.value.holder_id) == ("0", "0.2", "U_ALICE")
    assert [c.label for c in mig_store.active_claims(HOST)] == ["0.2"]


def test_a_held_card_refuses_its_slices_but_not_another_card(mig_store: ClaimStore) -> None:
    claim(mig_store, CARD, "U_ALICE")
    with pytest.raises(AlreadyHeld) as refused:
        claim(mig_store, SLICE1, "U_BOB")
    assert (refused.value.gpu_label, refused.value.held_label, refused.value.holder_id) == ("0.1", "0", "U_ALICE")
    claim(mig_store, OTHER, "U_BOB")
    assert [c.label for c in mig_store.active_claims(HOST)] == ["0", "1"]


def race_card_against_slice(engine: Engine) -> None:
    store = SqlClaimStore(engine)
    store.sync_gpus(HOST, [CARD, SLICE1, SLICE2], NOW)
    barrier = threading.Barrier(THREADS)

    def contender(number: int) -> str:
        gpu = CARD if number % 2 else SLICE1
        barrier.wait(60)
        try:
            claim(store, gpu, f"U_{number:02d}")
        except AlreadyHeld:
            return "held"
        return "won"

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = Counter(pool.map(contender, range(THREADS)))
    assert results == {"won": 1, "held": THREADS - 1}
    assert len(store.active_claims(HOST)) == 1


def test_card_and_slice_claims_racing_on_sqlite_one_winner(sqlite_engine: Engine) -> None:
    race_card_against_slice(sqlite_engine)


@needs_postgres
def test_card_and_slice_claims_racing_on_postgres_one_winner(postgres_engine: Engine) -> None:
    race_card_against_slice(postgres_engine)


def test_migration_0004_keeps_claims_made_before_it(sqlite_url: str) -> None:
    from alembic import command

    engine = make_engine(sqlite_url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0003_people")
            connection.execute(
                text(
                    "INSERT INTO claims (host, gpu_uuid, gpu_index, user_id, purpose, started_at, ends_at, status)"
                    " VALUES ('node1', 'GPU-OLD', 0, 'U_ALICE', 'old', '2026-11-24 09:00:00', '2026-11-24 10:00:00',"
                    " 'active')"
                )
            )
        upgrade_to_head(engine)
        [held] = SqlClaimStore(engine).active_claims(HOST)
        assert (held.label, held.parent_gpu_uuid, held.user_id) == ("0", None, "U_ALICE")
    finally:
        engine.dispose()
