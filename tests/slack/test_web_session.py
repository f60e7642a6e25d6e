"""The Web API session: JSON through orjson, with slack_sdk's behaviour unchanged, over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from gpubot.slack.web_session import web_api_session
from gpubot.standin import SlackStandin

# What a Home view carries that a careless encoder gets wrong: non-ASCII text, emoji outside the BMP,
# markup characters, nesting, booleans and numbers.
VIEW: dict[str, Any] = {
    "type": "home",
    "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "Your GPUs · 12 °C", "emoji": True}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": '🟢 *GPU 1* — <@U1> &lt;x&gt; ▁▂▃█ "quoted"\nline', "verbatim": True},
            "accessory": {"type": "button", "text": {"type": "plain_text", "text": "Claim"}, "value": "1"},
        },
    ],
}


def test_a_view_goes_out_and_its_echo_comes_back_as_sent() -> None:
    async def publish(api_url: str, token: str) -> Any:
        async with web_api_session(5.0) as session:
            client = AsyncWebClient(base_url=api_url, token=token, session=session)
            return await client.views_publish(user_id="U1", view=VIEW)

    with SlackStandin() as slack:
        response = asyncio.run(publish(slack.api_url, slack.bot_token))
        (call,) = slack.calls("views.publish")

    assert call.params["view"] == VIEW
    assert response["ok"] is True
    # Slack (and the stand-in) add a block_id to every block; the rest comes back as sent.
    echoed = [{key: value for key, value in block.items() if key != "block_id"} for block in response["view"]["blocks"]]
    assert echoed == VIEW["blocks"]


def test_a_body_that_is_not_json_is_still_a_slack_api_error() -> None:
    async def answer_garbage(request: web.Request) -> web.Response:
        return web.Response(body=b"{not json", content_type="application/json")

    async def call() -> None:
        app = web.Application()
        app.router.add_post("/api/auth.test", answer_garbage)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with web_api_session(5.0) as session:
                client = AsyncWebClient(base_url=f"http://127.0.0.1:{port}/api/", token="xoxb-1", session=session)
                await client.auth_test()
        finally:
            await runner.cleanup()

    with pytest.raises(SlackApiError, match="non-JSON format"):
        asyncio.run(call())
