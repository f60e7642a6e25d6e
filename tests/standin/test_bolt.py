"""A real Bolt AsyncApp on the aiohttp Socket Mode adapter, as the daemon runs one, against the stand-in.

Every payload builder goes through Bolt's own routing here, so the listeners it matches
(`command`, `action`, `view`, `event`) prove the payloads look right to Bolt.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from gpubot.standin import RESPONSE_URL_METHOD, SlackStandin
from gpubot.standin import payloads as p
from tests.standin.conftest import AppLoop


def build_app(client: AsyncWebClient) -> AsyncApp:
    app = AsyncApp(client=client, process_before_response=True)

    @app.command("/gpu")
    async def gpu(ack: Any) -> None:
        await ack(text="pong")

    @app.action("release")
    async def release(ack: Any, action: dict[str, Any], respond: Any) -> None:
        await ack()
        await respond(text=f"released GPU {action['value']}", replace_original=True)

    @app.view("claim_modal")
    async def claim(ack: Any, view: dict[str, Any]) -> None:
        duration = view["state"]["values"]["duration"]["duration_input"]["value"]
        await ack(response_action="errors", errors={"duration": f"{duration} is too long"})

    @app.event("app_home_opened")
    async def home(event: dict[str, Any], client: AsyncWebClient) -> None:
        await client.views_publish(user_id=event["user"], view={"type": "home", "blocks": [{"type": "divider"}]})

    return app


@pytest.fixture
def bolt(slack: SlackStandin, app_loop: AppLoop) -> Iterator[None]:
    async def connect() -> AsyncSocketModeHandler:
        client = AsyncWebClient(base_url=slack.api_url, token=slack.bot_token)
        handler = AsyncSocketModeHandler(build_app(client), slack.app_token, web_client=client)
        await handler.connect_async()
        return handler

    handler = app_loop.run(connect())
    slack.wait_connected()
    yield
    app_loop.run(handler.close_async())


@pytest.mark.usefixtures("bolt")
def test_a_slash_command_ack_text_comes_back_as_the_ack_payload(slack: SlackStandin) -> None:
    ack = slack.command("ping")

    # Bolt sends a text-only ack as a plain-text body, which its Socket Mode adapter wraps as {"text": ...}.
    assert ack.payload == {"text": "pong"}
    # Bolt's single-team authorization looked the bot up first, with the bot token.
    (auth,) = slack.calls("auth.test")
    assert auth.token == slack.bot_token


@pytest.mark.usefixtures("bolt")
def test_a_message_button_is_acked_and_answered_on_its_response_url(slack: SlackStandin) -> None:
    ack = slack.action("release", "3", channel_id="C0GPULAB", message_ts=p.slack_ts(7))

    assert ack.payload is None
    reply = slack.wait_for_call(RESPONSE_URL_METHOD)
    assert reply.params == {"text": "released GPU 3", "replace_original": True}
    assert ack.envelope["payload"]["response_url"].endswith(reply.path)


@pytest.mark.usefixtures("bolt")
def test_a_view_submission_ack_carries_the_errors(slack: SlackStandin) -> None:
    state = {"duration": {"duration_input": {"type": "plain_text_input", "value": "99h"}}}

    ack = slack.submit_view("claim_modal", state)

    assert ack.payload == {"response_action": "errors", "errors": {"duration": "99h is too long"}}


@pytest.mark.usefixtures("bolt")
def test_opening_the_home_tab_publishes_a_view(slack: SlackStandin) -> None:
    ack = slack.open_home("U0BOB")

    assert ack.payload is None
    publish = slack.wait_for_call("views.publish")
    assert publish.params["user_id"] == "U0BOB"
    assert publish.response["view"]["type"] == "home"
