"""Two gpubots on one database, as two daemons of one Slack app: an event retried onto the other one is handled
once, and a change made through one republishes a Home tab opened through the other.

Each app has its own store on its own engine, as two processes would; Slack hands each envelope to either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from gpubot.standin import SlackStandin
from gpubot.standin import payloads as p
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import upgrade_to_head
from gpubot.storage.tables import metadata
from tests.postgres import scratch_database
from tests.slack.harness import InProcessApp
from tests.storage.conftest import needs_postgres

ALICE = "U0ALICE"
BOB = "U0BOB"


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackStandin]:
    with SlackStandin() as standin:
        yield standin


@pytest.fixture(scope="module")
def _postgres_url() -> Iterator[str]:
    with scratch_database() as url:
        upgrade_to_head(url)
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gpubot.db'}"
        upgrade_to_head(url)
        return url
    url = request.getfixturevalue("_postgres_url")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)} RESTART IDENTITY"))
    finally:
        engine.dispose()
    return url


@pytest.fixture
def daemons(slack: SlackStandin, database_url: str) -> Iterator[tuple[InProcessApp, InProcessApp]]:
    engines = [make_engine(database_url) for _ in range(2)]
    slack.clear_calls()
    try:
        yield InProcessApp(slack, store=SqlClaimStore(engines[0])), InProcessApp(slack, store=SqlClaimStore(engines[1]))
    finally:
        for engine in engines:
            engine.dispose()


def dispatch(*deliveries: tuple[InProcessApp, Any]) -> None:
    async def main() -> None:
        for gpubot, body in deliveries:
            await gpubot.dispatch(body)

    asyncio.run(main())


def dispatch_at_once(*deliveries: tuple[InProcessApp, Any]) -> None:
    async def main() -> None:
        await asyncio.gather(*(gpubot.dispatch(body) for gpubot, body in deliveries))

    asyncio.run(main())


def command(slack: SlackStandin, text: str, user_id: str) -> dict[str, Any]:
    return p.slash_command(text, response_url=slack.new_response_url(), user_id=user_id)


def published_to(slack: SlackStandin, user_id: str) -> int:
    return sum(1 for call in slack.calls("views.publish") if call.params["user_id"] == user_id)


def test_an_event_retried_onto_the_other_daemon_is_handled_once(
    daemons: tuple[InProcessApp, InProcessApp], slack: SlackStandin
) -> None:
    first, second = daemons
    opened = p.app_home_opened(BOB)

    dispatch((first, opened), (second, opened))

    assert published_to(slack, BOB) == 1


def test_an_event_delivered_to_both_daemons_at_once_is_handled_once(
    daemons: tuple[InProcessApp, InProcessApp], slack: SlackStandin
) -> None:
    first, second = daemons
    opened = p.app_home_opened(BOB)

    dispatch_at_once((first, opened), (second, opened), (first, opened), (second, opened))

    assert published_to(slack, BOB) == 1


def test_each_new_opening_publishes_through_whichever_daemon_gets_it(
    daemons: tuple[InProcessApp, InProcessApp], slack: SlackStandin
) -> None:
    first, second = daemons

    dispatch((first, p.app_home_opened(BOB)), (second, p.app_home_opened(BOB)))

    assert published_to(slack, BOB) == 2


def test_a_change_through_one_daemon_republishes_a_home_opened_through_the_other(
    daemons: tuple[InProcessApp, InProcessApp], slack: SlackStandin
) -> None:
    first, second = daemons
    dispatch((second, p.app_home_opened(BOB)))
    slack.clear_calls()

    dispatch((first, command(slack, "claim 1 bob's sweep 2h", BOB)))
    dispatch((first, command(slack, "claim 2 alice's run 2h", ALICE)))  # Alice never opened her Home

    bob_home = [call for call in slack.calls("views.publish") if call.params["user_id"] == BOB]
    assert len(bob_home) == 1 and "bob's sweep" in str(bob_home[0].params["view"])
    assert published_to(slack, ALICE) == 0
