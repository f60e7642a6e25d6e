"""Does the Slack app work as gpubot needs it? Each check talks to Slack for real, for `gpubot doctor`.

Every failure is a `CheckFailed` whose `fix` names the page of the app's settings (or the line of
manifest.yml) to change.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from gpubot.core.errors import CheckFailed
from gpubot.slack import messages, views
from gpubot.slack.manifest import APP_TOKEN_SCOPE, BOT_SCOPES

T = TypeVar("T")

_REJECTED_TOKEN = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"})
_RECREATE = "or re-create the app from manifest.yml"


@dataclass(frozen=True)
class BotIdentity:
    """Who the bot token belongs to, and what it may do."""

    team: str
    bot_user_id: str
    scopes: frozenset[str]

    @property
    def missing_scopes(self) -> tuple[str, ...]:
        """The scopes gpubot needs that the token lacks, in the manifest's order."""
        return tuple(scope for scope in BOT_SCOPES if scope not in self.scopes)

    @property
    def extra_scopes(self) -> tuple[str, ...]:
        """The scopes the token has that gpubot does not need, sorted: worth removing."""
        return tuple(sorted(self.scopes - set(BOT_SCOPES)))


class SlackProbe:
    """Checks one Slack workspace's app through the Web API and a Socket Mode connection."""

    def __init__(self, api_url: str, *, timeout_s: float = 10.0) -> None:
        """Point the checks at a Slack Web API.

        Args:
            api_url: GPUBOT_SLACK_API_URL, ending in a slash.
            timeout_s: How long each call (and the wait for Socket Mode's hello) may take.
        """
        self._api_url = api_url
        self._timeout_s = timeout_s

    async def bot_token(self, token: str) -> BotIdentity:
        """`auth.test` with the bot token; its scopes come back in the `x-oauth-scopes` header.

        Raises:
            CheckFailed: Slack rejects the token or cannot be reached.
        """
        client = AsyncWebClient(base_url=self._api_url, token=token, timeout=int(self._timeout_s))
        response = await self._call(
            client.auth_test(),
            token_name="SLACK_BOT_TOKEN",
            fix_rejected="copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page; "
            "if the app was uninstalled, install it to the workspace again",
        )
        return BotIdentity(
            team=str(response.get("team") or response.get("team_id") or "?"),
            bot_user_id=str(response.get("user_id") or "?"),
            scopes=_granted_scopes(response),
        )

    async def socket_mode(self, app_token: str) -> None:
        """Open a Socket Mode connection with the app-level token and wait for Slack's `hello`.

        The connection is closed as soon as the hello arrives, so a running daemon loses at most a
        moment's share of events to it (Slack spreads events over an app's open connections).

        Raises:
            CheckFailed: the token is rejected, Socket Mode is off, or no hello arrives in time.
        """
        client = AsyncWebClient(base_url=self._api_url, timeout=int(self._timeout_s))
        response = await self._call(
            client.apps_connections_open(app_token=app_token),
            token_name="SLACK_APP_TOKEN",
            fix_rejected=f"make an app-level token with the scope {APP_TOKEN_SCOPE} (Basic Information → "
            "App-Level Tokens) and turn Socket Mode on",
        )
        url = str(response.get("url") or "")
        try:
            # Through the same proxy (HTTPS_PROXY) slack_sdk, and so the daemon, would use.
            kind, data = await asyncio.wait_for(_first_message(url, client.proxy), self._timeout_s)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as error:
            raise CheckFailed(
                f"apps.connections.open answered, but the WebSocket did not open ({error!r})",
                "let the host make outgoing WebSocket connections to Slack (wss://, port 443); "
                "check any proxy or firewall",
            ) from None
        if kind != aiohttp.WSMsgType.TEXT or _message_type(data) != "hello":
            raise CheckFailed(
                f"the Socket Mode connection opened but Slack sent no hello (got {kind.name})",
                "turn Socket Mode on (Settings → Socket Mode) " + _RECREATE,
            )

    async def home_tab(self, token: str, user_id: str) -> None:
        """Publish a short Home view for `user_id`: Slack answers `not_enabled` when the Home tab is off.

        The view says to reopen the tab, which makes the running daemon publish the real one.

        Raises:
            CheckFailed: the Home tab is off, the user is unknown, or Slack refuses.
        """
        client = AsyncWebClient(base_url=self._api_url, token=token, timeout=int(self._timeout_s))
        view = views.doctor_home_view()
        off = CheckFailed(
            "the Home tab is off (views.publish: not_enabled)",
            "turn on App Home → Show Tabs → Home Tab (features.app_home.home_tab_enabled in manifest.yml)",
        )
        call = client.views_publish(user_id=user_id, view=view)
        await self._user_call(call, "views.publish", user_id, refusals={"not_enabled": off})

    async def messages_tab(self, token: str, user_id: str) -> str:
        """DM `user_id` the way expiry warnings travel: `conversations.open`, then `chat.postMessage`.

        Slack gives bot tokens no way to read whether the Messages tab is shown, so this checks what
        can be checked: that the DM arrives there. It is the user who sees it.

        Returns:
            The DM channel's id.

        Raises:
            CheckFailed: the DM cannot be opened or posted.
        """
        client = AsyncWebClient(base_url=self._api_url, token=token, timeout=int(self._timeout_s))
        message = messages.doctor_dm_message()
        opened = await self._user_call(client.conversations_open(users=user_id), "conversations.open", user_id)
        channel = str(opened["channel"]["id"])
        post = client.chat_postMessage(channel=channel, text=message.text, blocks=message.blocks)
        await self._user_call(post, "chat.postMessage", user_id)
        return channel

    async def _call(self, call: Awaitable[T], *, token_name: str, fix_rejected: str) -> T:
        try:
            return await asyncio.wait_for(call, self._timeout_s)
        except SlackApiError as error:
            reason = str(error.response.get("error", "rejected"))
            if reason in _REJECTED_TOKEN or reason == "not_allowed_token_type":
                raise CheckFailed(f"Slack rejected {token_name} ({reason})", fix_rejected) from None
            if reason == "missing_scope":
                needed = error.response.get("needed", "?")
                raise CheckFailed(f"{token_name} lacks the scope {needed}", fix_rejected) from None
            raise CheckFailed(f"Slack answered {reason}", fix_rejected) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            raise _unreachable(self._api_url, error) from None

    async def _user_call(
        self, call: Awaitable[T], method: str, user_id: str, refusals: Mapping[str, CheckFailed] | None = None
    ) -> T:
        """Make a call that names `user_id`; `refusals` are the failures to report for particular Slack errors."""
        try:
            return await asyncio.wait_for(call, self._timeout_s)
        except SlackApiError as error:
            reason = str(error.response.get("error", "rejected"))
            known = (refusals or {}).get(reason)
            raise (known or _user_or_generic_failure(method, reason, user_id)) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            raise _unreachable(self._api_url, error) from None


async def _first_message(url: str, proxy: str | None) -> tuple[aiohttp.WSMsgType, str]:
    """Open a WebSocket and return the first message's type and text (empty if not text), then close it."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url, proxy=proxy or None) as socket:
        message = await socket.receive()
    return message.type, message.data if isinstance(message.data, str) else ""


def _message_type(data: str) -> str | None:
    try:
        decoded = json.loads(data)
    except ValueError:
        return None
    return decoded.get("type") if isinstance(decoded, dict) else None


def _unreachable(api_url: str, error: BaseException) -> CheckFailed:
    return CheckFailed(
        f"cannot reach Slack at {api_url} ({error!r})",
        "let the host make outgoing HTTPS connections to slack.com (set HTTPS_PROXY if it needs a proxy), "
        "or correct GPUBOT_SLACK_API_URL",
    )


def _user_or_generic_failure(method: str, reason: str, user_id: str) -> CheckFailed:
    if reason in ("user_not_found", "invalid_arguments", "cannot_dm_bot"):
        return CheckFailed(
            f"{method} failed for {user_id} ({reason})",
            "name a person in this workspace: `gpubot doctor --user U…` with your member ID "
            "(Slack: your profile → ⋮ → Copy member ID), or fix GPUBOT_ADMINS",
        )
    if reason == "missing_scope":
        return CheckFailed(
            f"{method} needs a scope the bot token lacks",
            "add the bot scopes " + ", ".join(BOT_SCOPES) + f" (OAuth & Permissions) {_RECREATE}, then reinstall",
        )
    return CheckFailed(f"{method} failed ({reason})", f"check the app's configuration {_RECREATE}")


def _granted_scopes(response: AsyncSlackResponse) -> frozenset[str]:
    # Slack lists a token's scopes in this response header (aiohttp's headers ignore case).
    header = response.headers.get("x-oauth-scopes") or ""
    return frozenset(scope.strip() for scope in header.split(",") if scope.strip())
