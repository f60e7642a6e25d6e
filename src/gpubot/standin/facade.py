"""`SlackStandin`: the stand-in behind a synchronous API, its server on a background event loop.

Plain pytest tests, the `gpubot demo` command and the benchmarks drive it from ordinary
threads, while the app under test talks to it with the real slack_sdk clients.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
import uuid
from collections.abc import Callable, Collection, Coroutine, Sequence
from types import TracebackType
from typing import Any, TypeVar

from gpubot.standin import payloads
from gpubot.standin.calls import Ack, Call, StandinError, StandinTimeoutError
from gpubot.standin.server import StandinServer
from gpubot.standin.web_api import Body, UploadedFile

DEFAULT_BOT_TOKEN = "xoxb-standin-bot"
DEFAULT_APP_TOKEN = "xapp-standin-app"
DEFAULT_SCOPES = frozenset({"commands", "chat:write", "im:write", "im:history", "users:read", "files:write"})

# Extra seconds the calling thread waits beyond a coroutine's own timeout, so that the
# coroutine's clearer StandinTimeoutError is the one raised.
_GRACE_S = 5.0

T = TypeVar("T")


class SlackStandin:
    """A loopback Slack: Web API, response URLs and Socket Mode on 127.0.0.1.

    Use it as a context manager::

        with SlackStandin() as slack:
            client = WebClient(base_url=slack.api_url, token=slack.bot_token)
            ...
            slack.wait_connected()
            ack = slack.command("status", user_id="U0ALICE")
    """

    def __init__(
        self,
        *,
        bot_token: str = DEFAULT_BOT_TOKEN,
        app_token: str = DEFAULT_APP_TOKEN,
        scopes: Collection[str] = DEFAULT_SCOPES,
        port: int = 0,
        home_tab: bool = True,
    ) -> None:
        """Configure the stand-in; `start()` (or `with`) runs it.

        Args:
            bot_token: The only bot token the Web API accepts.
            app_token: The only app-level token `apps.connections.open` accepts.
            scopes: The bot token's scopes, reported by `auth.test` in `x-oauth-scopes`.
            port: TCP port on 127.0.0.1; 0 picks a free one.
            home_tab: False emulates an app whose Home tab is off: views.publish of a home view
                answers `not_enabled`.
        """
        self.bot_token = bot_token
        self.app_token = app_token
        self._server = StandinServer(
            bot_token=bot_token, app_token=app_token, scopes=scopes, port=port, home_tab=home_tab
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._response_urls = itertools.count(1)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> SlackStandin:
        """Start the server on a new event loop in a daemon thread.

        Returns:
            self, for chaining.

        Raises:
            StandinError: It is already running.
        """
        if self._loop is not None:
            raise StandinError("the stand-in is already running")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="slack-standin", daemon=True)
        self._thread.start()
        try:
            self._run(self._server.start(), timeout=10.0, awaited="the stand-in's server to start")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Close every socket (clients see a close), stop the server and its thread. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._run(self._server.stop(), timeout=10.0, awaited="the stand-in's server to stop")
        finally:
            self._loop = self._thread = None
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10.0)
            loop.close()

    def __enter__(self) -> SlackStandin:
        """Start the stand-in."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the stand-in."""
        self.stop()

    @property
    def api_url(self) -> str:
        """The Web API base URL for `WebClient(base_url=...)`, with the trailing slash slack_sdk needs."""
        return f"{self._origin()}/api/"

    def new_response_url(self) -> str:
        """Return a fresh response URL; posts to it are recorded under the method "response_url"."""
        return f"{self._origin()}/response/{next(self._response_urls)}"

    # --- Socket Mode ---------------------------------------------------------------------------

    def wait_connected(self, timeout: float = 10.0) -> int:
        """Block until a Socket Mode client is connected, has its hello and was sent no disconnect.

        Returns:
            The connection's serial number (1 for the first, growing with each reconnect).

        Raises:
            StandinTimeoutError: No client connected within `timeout` seconds.
        """
        return self._run(self._server.wait_connected(timeout), timeout, "a Socket Mode client to connect")

    def wait_live(self, count: int, timeout: float = 10.0) -> list[int]:
        """Block until exactly `count` Socket Mode connections are live (several daemons up, or one gone).

        Returns:
            Their serial numbers, oldest first.

        Raises:
            StandinTimeoutError: There were not `count` live connections within `timeout` seconds.
        """
        return self._run(self._server.wait_live(count, timeout), timeout, f"{count} live Socket Mode connections")

    def send(self, envelope_type: str, payload: Body, *, retry_attempt: int = 0, timeout: float = 5.0) -> Ack:
        """Push one envelope to the newest connected client and wait for its ack.

        Args:
            envelope_type: "slash_commands", "events_api" or "interactive".
            payload: A payload from `gpubot.standin.payloads`.
            retry_attempt: Mark an `events_api` envelope as Slack's n-th redelivery.
            timeout: Seconds for a client to be connected and to ack.

        Returns:
            The ack.

        Raises:
            StandinTimeoutError: No client, or no ack, within `timeout`.
            ValueError: Unknown envelope type, or a retry of a non-event.
        """
        return self.send_many([(envelope_type, payload)], retry_attempt=retry_attempt, timeout=timeout)[0]

    def send_many(
        self, envelopes: Sequence[tuple[str, Body]], *, retry_attempt: int = 0, timeout: float = 10.0
    ) -> list[Ack]:
        """Push envelopes back to back, all in flight at once, and gather every ack.

        This is how "20 users claim the same GPU at the same instant" looks to the app.

        Args:
            envelopes: (envelope type, payload) pairs.
            retry_attempt: As in `send`, for every envelope.
            timeout: Seconds for a client to be connected and for all acks.

        Returns:
            The acks, in the order of `envelopes`.

        Raises:
            StandinTimeoutError: No client, or a missing ack, within `timeout`.
            ValueError: Unknown envelope type, or a retry of a non-event.
        """
        wrapped = [
            payloads.envelope(kind, payload, envelope_id=str(uuid.uuid4()), retry_attempt=retry_attempt)
            for kind, payload in envelopes
        ]
        return self._run(self._server.push(wrapped, timeout), timeout, f"acks of {len(wrapped)} envelope(s)")

    def command(
        self,
        text: str,
        *,
        user_id: str = payloads.DEFAULT_USER_ID,
        command: str = "/gpu",
        channel_id: str = payloads.DEFAULT_CHANNEL_ID,
        timeout: float = 5.0,
    ) -> Ack:
        """Run a slash command with a fresh response URL and return the app's ack.

        Args:
            text: What the user typed after the command.
            user_id: Who ran it.
            command: The command name, with its slash.
            channel_id: Where it was run.
            timeout: Seconds for a client to be connected and to ack.

        Returns:
            The ack; the response URL is in `ack.envelope["payload"]["response_url"]`.

        Raises:
            StandinTimeoutError: No client, or no ack, within `timeout`.
        """
        payload = payloads.slash_command(
            text, response_url=self.new_response_url(), user_id=user_id, command=command, channel_id=channel_id
        )
        return self.send("slash_commands", payload, timeout=timeout)

    def action(
        self,
        action_id: str,
        value: str = "",
        *,
        user_id: str = payloads.DEFAULT_USER_ID,
        block_id: str = "gpubot_actions",
        channel_id: str | None = None,
        message_ts: str | None = None,
        ephemeral: bool = False,
        timeout: float = 5.0,
    ) -> Ack:
        """Click a button on the user's Home tab, or on a message when `channel_id` and `message_ts` are given.

        Args:
            action_id: The button's `action_id`.
            value: The button's `value`.
            user_id: Who clicked.
            block_id: The `actions` block holding the button.
            channel_id: The message's channel; None for a Home-tab click.
            message_ts: The message's `ts`; None for a Home-tab click.
            ephemeral: The message is ephemeral (its click carries no `message`).
            timeout: Seconds for a client to be connected and to ack.

        Returns:
            The ack; a message click's fresh response URL is in `ack.envelope["payload"]["response_url"]`.

        Raises:
            StandinTimeoutError: No client, or no ack, within `timeout`.
            ValueError: Only one of `channel_id` and `message_ts` was given.
        """
        response_url = self.new_response_url() if channel_id is not None or message_ts is not None else None
        payload = payloads.block_actions(
            action_id,
            value,
            user_id=user_id,
            block_id=block_id,
            channel_id=channel_id,
            message_ts=message_ts,
            response_url=response_url,
            ephemeral=ephemeral,
        )
        return self.send("interactive", payload, timeout=timeout)

    def submit_view(
        self,
        callback_id: str,
        state_values: dict[str, dict[str, dict[str, Any]]],
        *,
        user_id: str = payloads.DEFAULT_USER_ID,
        private_metadata: str = "",
        timeout: float = 5.0,
    ) -> Ack:
        """Submit a modal and return the app's ack, e.g. one with `response_action: errors`.

        Args:
            callback_id: The modal's `callback_id`.
            state_values: `view.state.values`, as in `payloads.view_submission`.
            user_id: Who submitted.
            private_metadata: The modal's `private_metadata`.
            timeout: Seconds for a client to be connected and to ack.

        Returns:
            The ack.

        Raises:
            StandinTimeoutError: No client, or no ack, within `timeout`.
        """
        payload = payloads.view_submission(
            callback_id, state_values, user_id=user_id, private_metadata=private_metadata
        )
        return self.send("interactive", payload, timeout=timeout)

    def open_home(self, user_id: str = payloads.DEFAULT_USER_ID, *, timeout: float = 5.0) -> Ack:
        """Send `app_home_opened` for the user's Home tab and return the app's ack.

        Raises:
            StandinTimeoutError: No client, or no ack, within `timeout`.
        """
        return self.send("events_api", payloads.app_home_opened(user_id), timeout=timeout)

    def disconnect(self, reason: str = "refresh_requested") -> None:
        """Send a `disconnect` message to connected clients; they should reconnect on their own.

        Their sockets get no more envelopes, so a following `wait_connected()` waits for the new one.
        """
        self._run(self._server.disconnect(reason), _GRACE_S, f"a disconnect ({reason}) to be sent")

    def drop_connections(self) -> None:
        """Close every socket abruptly, as a network failure would; clients should reconnect."""
        self._run(self._server.drop_connections(), _GRACE_S, "the sockets to close")

    # --- recorded HTTP calls -------------------------------------------------------------------

    def uploaded(self, file_id: str) -> UploadedFile | None:
        """A file uploaded through Slack's upload flow (its bytes, title, channels); None if never begun."""
        return self._server.uploaded(file_id)

    def calls(self, method: str | None = None) -> list[Call]:
        """Return recorded HTTP calls, oldest first; `method` "response_url" selects response URL posts."""
        return self._server.calls.snapshot(method)

    def wait_for_call(
        self, method: str, predicate: Callable[[Call], bool] | None = None, timeout: float = 10.0
    ) -> Call:
        """Block until a recorded call of `method` matches `predicate`, counting calls already recorded.

        Returns:
            The oldest matching call; `clear_calls()` first to see only new ones.

        Raises:
            StandinTimeoutError: None matched within `timeout`; the message lists what was recorded.
        """
        return self._server.calls.wait(method, 1, predicate, timeout)[0]

    def wait_for_calls(
        self,
        method: str,
        count: int,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 10.0,
    ) -> list[Call]:
        """Block until `count` recorded calls of `method` match `predicate`; see `wait_for_call`."""
        return self._server.calls.wait(method, count, predicate, timeout)

    def clear_calls(self) -> None:
        """Forget every recorded call."""
        self._server.calls.clear()

    # --- fault injection -----------------------------------------------------------------------

    def fail_next(self, method: str, error: str, *, times: int = 1) -> None:
        """Make the next `times` calls of `method` answer `{"ok": false, "error": error}`.

        `method` may be "response_url"; response URL posts then fail with HTTP 400.
        """
        self._server.faults.fail_next(method, error, times)

    def rate_limit_next(self, method: str, *, retry_after_s: int = 1, times: int = 1) -> None:
        """Make the next `times` calls of `method` answer HTTP 429 with `Retry-After`, as Slack does."""
        self._server.faults.rate_limit_next(method, retry_after_s, times)

    def start_outage(self) -> None:
        """Answer every HTTP call with 503 `service_unavailable` until `clear_faults()`."""
        self._server.faults.start_outage()

    def clear_faults(self) -> None:
        """End an outage and drop every fault not yet consumed."""
        self._server.faults.clear()

    # --- plumbing ------------------------------------------------------------------------------

    def _origin(self) -> str:
        if self._loop is None:
            raise StandinError("the stand-in is not running; use start() or `with SlackStandin() as slack`")
        return self._server.origin

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float, awaited: str) -> T:
        if self._loop is None:
            coro.close()
            raise StandinError(f"the stand-in is not running, so it cannot wait for {awaited}")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout + _GRACE_S)
        except concurrent.futures.TimeoutError:
            if future.done():
                raise  # the coroutine's own StandinTimeoutError (a TimeoutError too), which says more
            future.cancel()
            raise StandinTimeoutError(f"waited {timeout + _GRACE_S} s for {awaited}") from None
