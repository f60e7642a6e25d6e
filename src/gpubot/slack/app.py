"""The Bolt app: an `AsyncApp` whose listeners reply inside the ack (Socket Mode, aiohttp)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from gpubot.slack.commands import SlashCommands

logger = logging.getLogger(__name__)


def build_app(api_url: str, identity: AuthorizeResult, commands: SlashCommands) -> AsyncApp:
    """Wire the listeners into an `AsyncApp`.

    Args:
        api_url: the Slack Web API base URL.
        identity: who the bot is, from the `auth.test` done once at start-up; Bolt would otherwise call
            `auth.test` on the first request, making one person wait on an HTTP round trip.
        commands: answers `/gpu`.
    """

    async def authorize(**_: Any) -> AuthorizeResult:
        return identity

    app = AsyncApp(
        client=AsyncWebClient(base_url=api_url),
        authorize=authorize,
        # The reply travels in the ack itself: one WebSocket frame, no Web API call.
        process_before_response=True,
        # Socket Mode has no request signatures to verify.
        request_verification_enabled=False,
    )

    @app.command("/gpu")
    async def on_gpu_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        message = await commands.answer(command["user_id"], command.get("text", ""))
        await ack(response_type="ephemeral", text=message.text, blocks=message.blocks)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        logger.error("unhandled error for a %s request: %r", body.get("type", "slash command"), error)

    return app
