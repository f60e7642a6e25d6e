"""`gpubot db copy --to URL`: the host's SQLite database into PostgreSQL, what was copied printed; refusals exit 1."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gpubot.cli import main
from gpubot.core.models import Gpu, NewClaim, Person
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import upgrade_to_head
from tests.postgres import scratch_database
from tests.storage.conftest import needs_postgres

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def host_database(tmp_path, monkeypatch):
    """The host's database as the service left it: two GPUs, one claim with its confirmation DM, one name."""
    monkeypatch.setenv("GPUBOT_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("GPUBOT_DATABASE_URL", raising=False)
    engine = make_engine(f"sqlite:///{tmp_path / 'gpubot.db'}")
    try:
        upgrade_to_head(engine)
        store = SqlClaimStore(engine)
        gpus = [Gpu("box", "GPU-0", 0), Gpu("box", "GPU-1", 1)]
        store.sync_gpus("box", gpus, NOW)
        store.create_claims([NewClaim(gpus[0], "U_ANN", "train", NOW, NOW + timedelta(hours=2))], confirm_by_dm=True)
        store.save_person(Person("U_ANN", "Ann", NOW))
    finally:
        engine.dispose()
    return tmp_path / "gpubot.db"


@needs_postgres
def test_db_copy_prints_each_table_and_a_second_copy_is_refused(host_database, capsys):
    with scratch_database() as target:
        assert main(["db", "copy", "--to", target]) == 0
        captured = capsys.readouterr()
        assert f"database sqlite:///{host_database}" in captured.err  # which database is the source
        lines = captured.out.splitlines()
        assert lines[0] == f"gpubot: copied sqlite:///{host_database}"
        counts = {line.split()[0]: line.split()[1] for line in lines[2:]}
        assert counts["gpus"] == "2" and counts["claims"] == "1" and counts["outbox"] == "1"
        assert counts["claim_events"] == "1" and counts["people"] == "1" and counts["handled_events"] == "0"
        assert lines[-1].split()[-2:] == ["6", "rows"]

        assert main(["db", "copy", "--to", target]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert "is not empty" in err[-1] and "nothing was changed" in err[-1]


def test_db_copy_without_a_host_database_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GPUBOT_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("GPUBOT_DATABASE_URL", raising=False)
    assert main(["db", "copy", "--to", "postgresql+psycopg://gpubot@db/gpubot"]) == 1
    assert "there is no database at" in capsys.readouterr().err
    assert not (tmp_path / "gpubot.db").exists()


def test_db_copy_into_anything_but_postgres_is_refused(host_database, tmp_path, capsys):
    assert main(["db", "copy", "--to", f"sqlite:///{tmp_path / 'fleet.db'}"]) == 1
    assert "must be a PostgreSQL database" in capsys.readouterr().err
    assert not (tmp_path / "fleet.db").exists()


def test_db_copy_needs_a_target(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["db", "copy"])
    assert raised.value.code == 2
    assert "--to" in capsys.readouterr().err
