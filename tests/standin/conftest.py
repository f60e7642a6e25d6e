"""Fixtures for the stand-in's tests: the stand-in, and real Slack clients on a loop of their own."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from gpubot.standin import SlackStandin

FIXTURES = Path(__file__).parent / "fixtures"
NO_ACK = "no-ack"
"""Slash command text the echo client never acks."""

T = TypeVar("T")


def recorded(name: str) -> dict[str, Any]:
    """Load a recorded Slack payload from tests/standin/fixtures."""
    return json.loads((FIXTURES / name).read_text())


def missing_keys(recorded_payload: Any, ours: Any, path: str = "") -> set[str]:
    """Key paths present in a recorded payload but absent from ours, descending into dicts and first list items."""
    if isinstance(recorded_payload, dict) and isinstance(ours, dict):
        missing = {f"{path}{key}" for key in recorded_payload if key not in ours}
        for key in recorded_payload.keys() & ours.keys():
            missing |= missing_keys(recorded_payload[key], ours[key], f"{path}{key}.")
        return missing
    if isinstance(recorded_payload, list) and isinstance(ours, list) and recorded_payload and ours:
        return missing_keys(recorded_payload[0], ours[0], f"{path}0.")
    return set()


class AppLoop:
    """An event loop in a thread of its own: where the app under test runs, as in the daemon."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="app-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


@pytest.fixture
def slack() -> Iterator[SlackStandin]:
    with SlackStandin() as standin:
        yield standin


@pytest.fixture
def app_loop() -> Iterator[AppLoop]:
    loop = AppLoop()
    yield loop
    loop.close()


@pytest.fixture
def echo_client(slack: SlackStandin, app_loop: AppLoop) -> Iterator[list[SocketModeRequest]]:
    """A connected slack_sdk aiohttp SocketModeClient that acks each request with what it parsed.

    Yields the requests it received, in order.
    """
    received: list[SocketModeRequest] = []

    async def echo(client: SocketModeClient, request: SocketModeRequest) -> None:
        received.append(request)
        if request.payload.get("text") == NO_ACK:
            return
        parsed = {
            "type": request.type,
            "user_id": request.payload.get("user_id"),
            "retry_attempt": request.retry_attempt,
            "retry_reason": request.retry_reason,
        }
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload=parsed))

    async def connect() -> SocketModeClient:
        web_client = AsyncWebClient(base_url=slack.api_url, token=slack.bot_token)
        client = SocketModeClient(app_token=slack.app_token, web_client=web_client)
        client.socket_mode_request_listeners.append(echo)  # type: ignore[arg-type]
        await client.connect()
        return client

    client = app_loop.run(connect())
    yield received
    app_loop.run(client.close())
