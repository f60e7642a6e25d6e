"""The stand-in's Socket Mode side, driven by slack_sdk's real aiohttp SocketModeClient."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from slack_sdk import WebClient
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from gpubot.standin import SlackStandin, StandinError, StandinTimeoutError
from gpubot.standin import payloads as p
from gpubot.standin.server import MAX_CONNECTIONS
from tests.standin.conftest import NO_ACK, AppLoop, missing_keys, recorded


def test_a_command_is_delivered_and_the_ack_payload_comes_back(
    slack: SlackStandin, echo_client: list[SocketModeRequest]
) -> None:
    slack.wait_connected()

    ack = slack.command("status", user_id="U0BOB")

    assert ack.payload == {"type": "slash_commands", "user_id": "U0BOB", "retry_attempt": None, "retry_reason": None}
    assert 0 < ack.latency_s < 5
    (request,) = echo_client
    assert request.envelope_id == ack.envelope_id == ack.envelope["envelope_id"]
    assert request.accepts_response_payload is True
    assert request.payload["response_url"].startswith(slack.api_url.removesuffix("api/") + "response/")


def test_the_client_opened_its_socket_with_the_app_token(
    slack: SlackStandin, echo_client: list[SocketModeRequest]
) -> None:
    slack.wait_connected()

    (call,) = slack.calls("apps.connections.open")
    assert call.token == slack.app_token


def test_twenty_envelopes_in_flight_get_twenty_matching_acks(
    slack: SlackStandin, echo_client: list[SocketModeRequest]
) -> None:
    slack.wait_connected()
    users = [f"U0USER{n:02d}" for n in range(20)]

    acks = slack.send_many(
        [
            ("slash_commands", p.slash_command("claim 0", user_id=u, response_url=slack.new_response_url()))
            for u in users
        ]
    )

    assert [ack.payload["user_id"] for ack in acks if ack.payload] == users
    assert len({ack.envelope_id for ack in acks}) == 20


def test_a_retried_event_carries_its_retry_attempt(slack: SlackStandin, echo_client: list[SocketModeRequest]) -> None:
    slack.wait_connected()

    ack = slack.send("events_api", p.app_home_opened("U0BOB"), retry_attempt=1)

    assert ack.envelope["retry_attempt"] == 1
    assert ack.payload is not None
    assert (ack.payload["retry_attempt"], ack.payload["retry_reason"]) == (1, "timeout")
    assert set(recorded("events_api_message_envelope_retry_bolt_mock.json")) <= set(ack.envelope)


def test_a_missing_ack_times_out_naming_the_envelope(slack: SlackStandin, echo_client: list[SocketModeRequest]) -> None:
    slack.wait_connected()

    with pytest.raises(StandinTimeoutError, match="slash_commands"):
        slack.command(NO_ACK, timeout=0.3)


def test_sending_without_a_client_times_out_naming_the_socket(slack: SlackStandin) -> None:
    with pytest.raises(StandinTimeoutError, match="Socket Mode client"):
        slack.open_home(timeout=0.2)


@pytest.mark.parametrize("reconnect", ["disconnect", "drop_connections"])
def test_the_client_reconnects_after_a_disconnect_or_a_dropped_socket(
    slack: SlackStandin, echo_client: list[SocketModeRequest], reconnect: str
) -> None:
    first = slack.wait_connected()

    getattr(slack, reconnect)()

    assert slack.wait_connected() > first
    assert slack.command("status").payload is not None
    assert len(slack.calls("apps.connections.open")) >= 2


def test_the_raw_socket_protocol(app_loop: AppLoop) -> None:
    """hello on connect, unknown tickets refused, disconnect messages, and a close frame on stop."""
    slack = SlackStandin().start()
    url = WebClient(base_url=slack.api_url).apps_connections_open(app_token=slack.app_token)["url"]

    async def open_socket() -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
        session = aiohttp.ClientSession()
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(url.replace("ticket=", "ticket=9"))
        return session, await session.ws_connect(url)

    async def receive(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
        return await ws.receive()

    session, ws = app_loop.run(open_socket())
    hello = json.loads(app_loop.run(receive(ws)).data)
    assert (hello["type"], hello["num_connections"]) == ("hello", 1)
    assert missing_keys(recorded("socket_mode_hello.json"), hello) == set()
    assert slack.wait_connected() == 1

    slack.disconnect("refresh_requested")
    disconnect = json.loads(app_loop.run(receive(ws)).data)
    assert (disconnect["type"], disconnect["reason"]) == ("disconnect", "refresh_requested")
    assert missing_keys(recorded("socket_mode_disconnect_refresh_requested_docs.json"), disconnect) == set()

    slack.stop()
    slack.stop()

    assert app_loop.run(receive(ws)).type == aiohttp.WSMsgType.CLOSE
    app_loop.run(session.close())
    with pytest.raises(StandinError, match="not running"):
        slack.wait_connected()


def test_each_envelope_goes_to_one_random_live_connection(slack: SlackStandin, app_loop: AppLoop) -> None:
    # Slack hands each envelope to one random live connection of the app: two daemons share the work.
    received: dict[int, list[str]] = {1: [], 2: []}

    def acking(client_number: int) -> Any:
        async def ack(client: SocketModeClient, request: SocketModeRequest) -> None:
            received[client_number].append(request.envelope_id)
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))

        return ack

    async def connect(client_number: int) -> SocketModeClient:
        client = SocketModeClient(app_token=slack.app_token, web_client=AsyncWebClient(base_url=slack.api_url))
        client.socket_mode_request_listeners.append(acking(client_number))  # type: ignore[arg-type]
        await client.connect()
        return client

    clients = [app_loop.run(connect(1))]
    slack.wait_connected()
    clients.append(app_loop.run(connect(2)))
    assert slack.wait_connected() == 2
    try:
        acks = slack.send_many([("events_api", p.app_home_opened(f"U0USER{n:03d}")) for n in range(200)])
    finally:
        for client in clients:
            app_loop.run(client.close())

    by_connection = {n: {ack.envelope_id for ack in acks if ack.connection == n} for n in (1, 2)}
    assert {n: set(ids) for n, ids in received.items()} == by_connection
    assert len(received[1]) + len(received[2]) == 200
    # Random, not round robin and not all to the newest: each gets a fair share of 200.
    assert 50 < len(received[1]) < 150


def test_an_eleventh_connection_is_refused_as_slack_does(app_loop: AppLoop) -> None:
    slack = SlackStandin().start()
    session = app_loop.run(_session())

    async def open_socket() -> aiohttp.ClientWebSocketResponse:
        url = WebClient(base_url=slack.api_url).apps_connections_open(app_token=slack.app_token)["url"]
        ws = await session.ws_connect(url)
        await ws.receive()  # hello, or the refusal
        return ws

    async def next_message(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
        return await ws.receive()

    try:
        sockets = [app_loop.run(open_socket()) for _ in range(MAX_CONNECTIONS)]
        assert slack.wait_connected() == MAX_CONNECTIONS

        url = WebClient(base_url=slack.api_url).apps_connections_open(app_token=slack.app_token)["url"]
        eleventh = app_loop.run(session.ws_connect(url))
        refusal = json.loads(app_loop.run(next_message(eleventh)).data)

        assert (refusal["type"], refusal["reason"], refusal["num_connections"]) == (
            "disconnect",
            "too_many_websockets",
            MAX_CONNECTIONS,
        )
        assert missing_keys(recorded("socket_mode_disconnect_too_many_websockets.json"), refusal) == set()
        assert app_loop.run(next_message(eleventh)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        # The ten keep working.
        assert slack.wait_connected() == MAX_CONNECTIONS
        assert len(sockets) == MAX_CONNECTIONS
    finally:
        slack.stop()
        app_loop.run(session.close())


async def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()
