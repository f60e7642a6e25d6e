"""A database gpubot cannot write: refused at start with one line naming it, and a clear reply at run time.

Tests run as root, whom file modes do not stop; SQLite's own read-only mode (`?mode=ro`) refuses writes
for anyone, and a read-only bind mount (where `unshare` may make one) is what a remounted file system does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gpubot.core.errors import SetupError, StoreReadOnly
from gpubot.core.models import Gpu, NewClaim
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import upgrade_to_head
from gpubot.storage.preflight import require_writable

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def _read_only_url(path: Path) -> str:
    return f"sqlite:///file:{path}?mode=ro&uri=true"


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    path = tmp_path / "gpubot.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_to_head(engine)
    SqlClaimStore(engine).sync_gpus("gpu-box-1", [Gpu("gpu-box-1", "GPU-0", 0, "H100")], NOW)
    engine.dispose()
    return path


def test_a_database_that_refuses_writes_is_a_setup_error_naming_it(migrated: Path) -> None:
    engine = make_engine(_read_only_url(migrated))
    try:
        with pytest.raises(StoreReadOnly) as raised:
            require_writable(engine)
    finally:
        engine.dispose()
    assert isinstance(raised.value, SetupError)  # the CLI exits 78 on it
    assert str(migrated) in raised.value.message and "readonly database" in raised.value.message


def test_a_writable_database_passes_and_keeps_nothing_of_the_check(migrated: Path) -> None:
    engine = make_engine(f"sqlite:///{migrated}")
    try:
        require_writable(engine)
    finally:
        engine.dispose()
    assert sorted(p.name for p in migrated.parent.iterdir() if p.name.startswith(".gpubot")) == []


def test_a_claim_on_a_read_only_database_says_so_and_changes_nothing(migrated: Path) -> None:
    engine = make_engine(_read_only_url(migrated))
    store = SqlClaimStore(engine)
    new = NewClaim(Gpu("gpu-box-1", "GPU-0", 0, "H100"), "U0ALICE", "train", NOW, NOW + timedelta(hours=1))
    try:
        with pytest.raises(StoreReadOnly) as raised:
            store.create_claims([new])
        assert store.active_claims() == []
    finally:
        engine.dispose()
    message = raised.value.message
    assert "cannot write its claims database" in message and "read-only" in message
    assert "nothing was changed" in message and "admin" in message


def _can_mount_read_only(directory: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind {directory} {directory} && mount -o remount,ro,bind {directory}"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def test_a_read_only_file_system_is_one_line_naming_the_file_and_the_cause(migrated: Path) -> None:
    directory = migrated.parent
    if not _can_mount_read_only(directory):
        pytest.skip("needs unshare and mount (root with CAP_SYS_ADMIN) for a read-only bind mount")
    check = (
        "from gpubot.storage.engine import make_engine; from gpubot.storage.preflight import require_writable; "
        f"require_writable(make_engine('sqlite:///{migrated}'))"
    )
    script = (
        f"mount --bind {directory} {directory} && mount -o remount,ro,bind {directory} && "
        f'exec {sys.executable} -c "{check}"'
    )
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "StoreReadOnly" in last and str(migrated) in last and "Read-only file system" in last, result.stderr
