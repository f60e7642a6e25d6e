"""The Bolt app: an `AsyncApp` whose listeners answer from local state and reply inside the ack."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from gpubot.core.errors import CommandError
from gpubot.slack import actions, messages
from gpubot.slack.home import HomeTab
from gpubot.slack.interactions import Interactions
from gpubot.slack.manifest import SLASH_COMMAND
from gpubot.slack.slash_commands import OpenClaimForm, Reply, SlashCommands
from gpubot.slack.tasks import AfterAck

logger = logging.getLogger(__name__)


def build_app(
    api_url: str,
    identity: AuthorizeResult,
    commands: SlashCommands,
    interactions: Interactions,
    home: HomeTab,
    after_ack: AfterAck,
) -> AsyncApp:
    """Wire the listeners into an `AsyncApp`.

    Args:
        api_url: the Slack Web API base URL.
        identity: who the bot is, from the `auth.test` done once at start-up; Bolt would otherwise call
            `auth.test` on the first request, making one person wait on an HTTP round trip.
        commands: answers `/gpu`.
        interactions: buttons and the claim form.
        home: the App Home tab.
        after_ack: runs the work that calls Slack once the ack is out.
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
        # Bolt answers a request no listener matches with a 404, which its Socket Mode adapter never acks, so
        # Slack shows the person an error after 3 s. Raised instead, it reaches `on_error`, which acks it.
        raise_error_for_unhandled_request=True,
    )

    @app.command(SLASH_COMMAND)
    async def on_gpu_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        text = command.get("text")
        match await commands.answer(command["user_id"], text if isinstance(text, str) else ""):
            case Reply(message):
                await ack(response_type="ephemeral", text=message.text, blocks=message.blocks)
            case OpenClaimForm():
                await ack()
                open_form = interactions.open_claim_form(command.get("trigger_id", ""), None)
                after_ack.spawn(open_form, "opening the claim form")

    @app.event("app_home_opened")
    async def on_home_opened(event: dict[str, Any], body: dict[str, Any]) -> None:
        # Slack retries an event it thinks went unanswered, to any daemon, with the same event id: the database
        # tells a retry from a first delivery.
        if event.get("tab") == "home":
            home.opened(event["user"], body.get("event_id"))

    @app.action(actions.RELEASE_PATTERN)
    async def on_release(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user_id = body["user"]["id"]
        after_ack.spawn(
            interactions.release_pressed(user_id, action.get("value", ""), body.get("container", {})),
            f"a release button pressed by {user_id}",
        )

    @app.action(actions.EXTEND_PATTERN)
    async def on_extend(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user_id = body["user"]["id"]
        value = action.get("value") or (action.get("selected_option") or {}).get("value", "")
        after_ack.spawn(
            interactions.extend_pressed(user_id, value, body.get("container", {})),
            f"an extend button pressed by {user_id}",
        )

    @app.action(actions.CLAIM_GPU_PATTERN)
    async def on_claim_gpu(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        preselect = actions.preselected_gpu(action.get("value"))
        after_ack.spawn(interactions.open_claim_form(body["trigger_id"], preselect), "opening the claim form")

    @app.action(actions.CLAIM_FORM)
    async def on_claim_form_button(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        after_ack.spawn(interactions.open_claim_form(body["trigger_id"], None), "opening the claim form")

    @app.action(actions.HOST_INPUT)
    async def on_claim_form_host(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        view = body.get("view") or {}
        picked = (action.get("selected_option") or {}).get("value")
        after_ack.spawn(
            interactions.claim_form_host_picked(view.get("id", ""), view.get("hash"), picked),
            "showing a host's GPUs in the claim form",
        )

    @app.action(actions.HOME_HOST)
    async def on_home_host(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        try:
            host = actions.parse_host((action.get("selected_option") or {}).get("value"))
        except CommandError:
            logger.info("the Home tab's host menu sent a value that is no host name; ignored")
            return
        home.show_host(body["user"]["id"], host)

    @app.view(actions.CLAIM_MODAL_CALLBACK)
    async def on_claim_form_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        errors = await interactions.submit_claim(body["user"]["id"], view.get("state", {}))
        if errors:
            await ack(response_action="errors", errors=errors)
        else:
            await ack()

    @app.error
    async def on_error(error: Exception, body: Any) -> BoltResponse:
        """Ack whatever went unhandled or failed, so Slack never shows the person a timeout; log it once."""
        kind = _kind(body)
        if isinstance(error, BoltUnhandledRequestError):
            logger.info("acked a %s request gpubot does not handle", kind)
        else:
            # A malformed payload (a listener found a field missing): one line, no traceback.
            logger.warning("acked a malformed %s request: %r", kind, error)
            # Where in gpubot it failed, for whoever debugs a listener (tests/slack/test_scenarios.py).
            logger.debug("the %s request failed here", kind, exc_info=error)
        if isinstance(body, dict) and "command" in body:
            message = messages.internal_error_message()
            return BoltResponse(
                status=200, body={"response_type": "ephemeral", "text": message.text, "blocks": message.blocks}
            )
        return BoltResponse(status=200, body="")

    return app


def _kind(body: Any) -> str:
    """What sort of request a body is, for the log: its type, and the event's type for events."""
    if not isinstance(body, dict):
        return "non-object"
    if "command" in body:
        return "slash command"
    event = body.get("event")
    if isinstance(event, dict):
        return f"{event.get('type')!s:.40} event"
    return f"{body.get('type')!s:.40}"
