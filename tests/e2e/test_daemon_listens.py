"""`gpubot serve` on PostgreSQL hears of changes made elsewhere (LISTEN/NOTIFY) and still stops cleanly."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from gpubot.core.models import ClaimStatus, EventKind
from gpubot.standin import SlackStandin
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from tests.postgres import scratch_database

from .conftest import reply_text, start_daemon

pytestmark = pytest.mark.postgres

_LISTENERS = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN gpubot_%'"


@pytest.fixture
def slack():
    with SlackStandin() as standin:
        yield standin


def test_a_release_made_outside_the_daemon_shows_in_its_next_status(slack, tmp_path):
    with scratch_database() as url:
        daemon = start_daemon(slack, tmp_path, GPUBOT_DATABASE_URL=url)
        engine = make_engine(url)
        try:
            assert _eventually(lambda: _listeners(engine) == 1), "the daemon listens on a connection of its own"
            slack.command("claim 1 listening test 4h", user_id="U0ALICE")
            assert "3 of 4 GPUs free" in reply_text(slack.command("status", user_id="U0BOB"))
            # Another process (the host CLI, another daemon) ends the claim: the daemon's snapshot hears of it.
            outside = SqlClaimStore(engine)
            [claim] = outside.active_claims()
            now = datetime.now(timezone.utc)
            outside.end_claim(claim.id, ClaimStatus.RELEASED, EventKind.FORCE_RELEASED, None, now)
            deadline = time.monotonic() + 10
            while "4 of 4 GPUs free" not in reply_text(slack.command("status", user_id="U0BOB")):
                assert time.monotonic() < deadline, daemon.log()
                time.sleep(0.05)
        finally:
            engine.dispose()
            code, took_s = daemon.stop()
        assert code == 0 and took_s < 10, daemon.log()


def _listeners(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text(_LISTENERS)).scalar_one()


def _eventually(condition: Callable[[], bool], timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True
