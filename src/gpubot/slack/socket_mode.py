"""The Socket Mode connection, made to stop when Slack rejects the app-level token instead of retrying forever.

slack_sdk's aiohttp client retries a failed connect every ping interval and logs a traceback each time,
whatever the failure: with a revoked app token that was a traceback every ping interval, forever.
Here a rejection of the token by `apps.connections.open` closes the client (so its retry loops end
quietly) and is reported once to the daemon, which stops with exit 78.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.web.async_client import AsyncWebClient

# What Slack answers for an app-level token that can never work: retrying cannot help.
REJECTED_TOKEN_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "not_allowed_token_type"}
)

# The handler's own default (slack_bolt's AsyncSocketModeHandler).
_PING_INTERVAL_S = 10.0


def rejection_reason(error: SlackApiError) -> str | None:
    """Slack's error code when it rejected the token itself; None for any other failure."""
    reason = error.response.get("error")
    return reason if isinstance(reason, str) and reason in REJECTED_TOKEN_ERRORS else None


class _GuardedClient(SocketModeClient):
    """slack_sdk's client, except that a rejected app token closes it and calls `on_rejected` once."""

    def __init__(self, *, on_rejected: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_rejected = on_rejected
        self.rejected: str | None = None

    async def issue_new_wss_url(self) -> str:
        try:
            return await super().issue_new_wss_url()
        except SlackApiError as error:
            reason = rejection_reason(error)
            if reason is not None:
                # Closed first: the connect and monitor loops check `closed` and end without a retry.
                self.closed = True
                self.auto_reconnect_enabled = False
                if self.rejected is None:
                    self.rejected = reason
                    self._on_rejected(reason)
            raise

    async def connect_to_new_endpoint(self, force: bool = False) -> None:
        # Every reconnect path (a `disconnect` message, a stale session) comes here, and slack_sdk logs
        # whatever it raises with a traceback; a rejection has already been reported once.
        try:
            await super().connect_to_new_endpoint(force)
        except SlackApiError:
            if self.rejected is None:
                raise


class GuardedSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler on `_GuardedClient`.

    Args:
        app: the Bolt app.
        app_token: the app-level token (xapp-…).
        web_client: the client `apps.connections.open` is called through.
        on_rejected: called once, on the event loop, with Slack's error code when it rejects the token.
    """

    def __init__(
        self, app: AsyncApp, app_token: str, web_client: AsyncWebClient, on_rejected: Callable[[str], None]
    ) -> None:
        # Not super().__init__(): it would build (and start the tasks of) a client of the plain kind.
        self.app = app
        self.app_token = app_token
        self.client = _GuardedClient(
            on_rejected=on_rejected,
            app_token=app_token,
            logger=app.logger,
            web_client=web_client,
            ping_interval=_PING_INTERVAL_S,
        )
        self.client.socket_mode_request_listeners.append(self.handle)  # type: ignore[arg-type]
