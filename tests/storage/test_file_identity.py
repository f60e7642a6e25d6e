"""A SQLite file deleted or replaced under a running gpubot: every write is refused, none confirmed (issue 11)."""

from __future__ import annotations

import logging
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from gpubot.core.errors import StoreReplaced
from gpubot.core.models import Gpu, NewClaim
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import upgrade_to_head

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
GPU = Gpu("gpu-box-1", "GPU-0", 0, "H100")


def _claim(gpu_index: int = 0) -> NewClaim:
    return NewClaim(
        Gpu("gpu-box-1", f"GPU-{gpu_index}", gpu_index, "H100"), "U0ALICE", "train", NOW, NOW + timedelta(hours=1)
    )


@pytest.fixture
def store(tmp_path: Path):
    path = tmp_path / "gpubot.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_to_head(engine)
    store = SqlClaimStore(engine)
    store.sync_gpus("gpu-box-1", [GPU, Gpu("gpu-box-1", "GPU-1", 1, "H100")], NOW)
    store.create_claims([_claim(0)])
    yield store, path
    engine.dispose()


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def test_a_deleted_file_refuses_every_write_and_logs_once(store, caplog) -> None:
    claims, path = store
    _remove(path)
    with caplog.at_level(logging.ERROR), pytest.raises(StoreReplaced) as raised:
        claims.create_claims([_claim(1)])
    assert "was deleted" in raised.value.message and "nothing was changed" in raised.value.message
    with pytest.raises(StoreReplaced):
        claims.create_claims([_claim(1)])
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == [
        f"the database file {path} was deleted; restart gpubot: refusing every change until gpubot is restarted"
    ]


def test_a_replaced_file_refuses_writes_even_though_it_is_a_good_database(store, tmp_path: Path) -> None:
    claims, path = store
    copy = tmp_path / "copy.db"
    shutil.copy(path, copy)
    _remove(path)
    shutil.move(copy, path)  # e.g. restored from a backup: another inode
    with pytest.raises(StoreReplaced) as raised:
        claims.create_claims([_claim(1)])
    assert raised.value.what == "replaced"


def test_an_untouched_file_passes(store) -> None:
    claims, _ = store
    claims.check_file()
    assert len(claims.create_claims([_claim(1)])) == 1


def test_a_connection_opened_after_the_file_was_deleted_never_creates_an_empty_one(tmp_path: Path) -> None:
    # A new pooled connection (a background job's, say) must not start a fresh database in the file's place,
    # which would then pass for a replaced one, or for the real one after a restart.
    path = tmp_path / "gpubot.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade_to_head(engine)
        store = SqlClaimStore(engine)
        store.list_gpus("box")
        engine.dispose()  # every pooled connection closed: the next one is new
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

        # Even past the store's own check, as a connection opened between that check and the deletion would be.
        with pytest.raises(OperationalError, match="unable to open"):
            engine.connect()
        assert not path.exists()
        with pytest.raises(StoreReplaced, match="deleted"):
            store.hosts()
        assert not path.exists()
    finally:
        engine.dispose()
