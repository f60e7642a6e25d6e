"""One loopback Slack per app under test, run on the benchmark's own event loop (no thread, no facade).

`SlackStandin` runs the stand-in's loop in a background thread of the calling process, which is
right for tests. A load generator in that process would share the GIL with that thread, and a
busy driver thread would delay the loop that time-stamps every ack. The benchmarks instead run
`StandinServer` directly on the main thread's loop of a process that does nothing else, and send
from that same loop, so the process's CPU use is the harness's whole cost and is measured.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass

from gpubot.standin import DEFAULT_APP_TOKEN, DEFAULT_BOT_TOKEN, DEFAULT_SCOPES, Ack, Call, payloads
from gpubot.standin.calls import CallLog
from gpubot.standin.server import StandinServer
from gpubot.standin.web_api import Body


class WatchedCallLog(CallLog):
    """The stand-in's call log: wakes futures waiting for a method and recipient, keeps only what is asked for.

    The server appends from its event loop, the same loop the futures belong to, so no locking or
    thread hand-off is needed: a waiter learns of the call as soon as the server recorded it. Calls
    are kept only for methods named with `keep`: thousands of recorded Home views would make this
    process's garbage collector pause for 100 ms and more, and the pauses would pass for the app's latency.
    """

    def __init__(self) -> None:
        """Start empty, with nobody waiting."""
        super().__init__()
        self._waiting: dict[tuple[str, str], asyncio.Future[Call]] = {}
        self._kept: dict[str, list[Call]] = {}

    def keep(self, method: str) -> list[Call]:
        """From now on, keep every call of `method` in the returned list, in arrival order."""
        return self._kept.setdefault(method, [])

    def expect(self, method: str, recipient: str) -> asyncio.Future[Call]:
        """A future for the next call of `method` addressed to `recipient` (a user or channel id).

        Raises:
            ValueError: someone already waits for that method and recipient.
        """
        key = (method, recipient)
        if key in self._waiting:
            raise ValueError(f"already waiting for {method} to {recipient}")
        future: asyncio.Future[Call] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        return future

    def forget(self, method: str, recipient: str) -> None:
        """Stop waiting for `method` to `recipient` (after a time-out)."""
        self._waiting.pop((method, recipient), None)

    def append(self, call: Call) -> None:
        """Wake whoever waits for the call; keep it if its method is kept."""
        kept = self._kept.get(call.method)
        if kept is not None:
            kept.append(call)
        future = self._waiting.pop((call.method, _recipient(call)), None)
        if future is not None and not future.done():
            future.set_result(call)


def _recipient(call: Call) -> str:
    # views.open names no user, only the trigger of the click that asked for it.
    for field in ("user_id", "channel", "users", "trigger_id"):
        value = call.params.get(field)
        if isinstance(value, str):
            return value
    return ""


@dataclass(frozen=True)
class Answered:
    """One envelope whose answer is a Web API call: the app's ack, then the call (e.g. `views.publish`)."""

    ack: Ack
    call: Call
    call_latency_s: float


class LoopbackSlack:
    """The stand-in's server on the running loop: Web API, response URLs and Socket Mode on 127.0.0.1."""

    def __init__(self) -> None:
        """Configure the server; `start()` binds it."""
        self.server = StandinServer(bot_token=DEFAULT_BOT_TOKEN, app_token=DEFAULT_APP_TOKEN, scopes=DEFAULT_SCOPES)
        self.calls = WatchedCallLog()
        # The server records into whatever log this attribute holds; ours also wakes waiters.
        self.server.calls = self.calls
        self._response_urls = itertools.count(1)

    async def start(self) -> LoopbackSlack:
        """Bind to a free port on 127.0.0.1 and serve."""
        await self.server.start()
        return self

    async def stop(self) -> None:
        """Close every socket and stop serving."""
        await self.server.stop()

    @property
    def api_url(self) -> str:
        """The Web API base URL for `GPUBOT_SLACK_API_URL`, with the trailing slash slack_sdk needs."""
        return f"{self.server.origin}/api/"

    def app_env(self) -> dict[str, str]:
        """The environment an app needs to reach this stand-in: tokens and the Web API URL."""
        return {
            "SLACK_BOT_TOKEN": DEFAULT_BOT_TOKEN,
            "SLACK_APP_TOKEN": DEFAULT_APP_TOKEN,
            "GPUBOT_SLACK_API_URL": self.api_url,
        }

    async def wait_connected(self, timeout: float) -> int:
        """Wait for a Socket Mode client; returns the connection's serial number."""
        return await self.server.wait_connected(timeout)

    async def send(self, envelope_type: str, payload: Body, timeout: float) -> Ack:
        """Send one envelope and wait for its ack; `Ack.latency_s` is send → ack, stamped on this loop.

        Raises:
            StandinTimeoutError: no client, or no ack within `timeout`.
        """
        envelope = payloads.envelope(envelope_type, payload, envelope_id=str(uuid.uuid4()))
        (ack,) = await self.server.push([envelope], timeout)
        return ack

    async def command(self, text: str, user_id: str, timeout: float) -> Ack:
        """Run `/gpu <text>` as `user_id`; the reply, if the app sends one in the ack, is `ack.payload`.

        Raises:
            StandinTimeoutError: no client, or no ack within `timeout`.
        """
        response_url = f"{self.server.origin}/response/{next(self._response_urls)}"
        payload = payloads.slash_command(text, response_url=response_url, user_id=user_id)
        return await self.send("slash_commands", payload, timeout)

    async def open_home(self, user_id: str, timeout: float) -> Answered:
        """Send `app_home_opened` for `user_id` and wait for the `views.publish` it causes.

        Raises:
            StandinTimeoutError: no ack within `timeout`.
            asyncio.TimeoutError: no publish within `timeout`.
        """
        envelope = ("events_api", payloads.app_home_opened(user_id))
        return await self._answered(envelope, "views.publish", user_id, timeout)

    async def click(self, action_id: str, value: str, user_id: str, timeout: float) -> Answered:
        """Click a button on `user_id`'s Home tab that opens a modal, and wait for the `views.open`.

        Raises:
            StandinTimeoutError: no ack within `timeout`.
            asyncio.TimeoutError: no `views.open` within `timeout`.
        """
        trigger_id = f"1000.{user_id}.action"
        payload = payloads.block_actions(action_id, value, user_id=user_id, trigger_id=trigger_id)
        return await self._answered(("interactive", payload), "views.open", trigger_id, timeout)

    async def submit(self, callback_id: str, state_values: Body, user_id: str, timeout: float) -> Ack:
        """Submit a modal as `user_id`; the app's answer (e.g. field errors) is `ack.payload`.

        Raises:
            StandinTimeoutError: no ack within `timeout`.
        """
        return await self.send(
            "interactive", payloads.view_submission(callback_id, state_values, user_id=user_id), timeout
        )

    async def _answered(self, envelope: tuple[str, Body], method: str, recipient: str, timeout: float) -> Answered:
        # `call_latency_s` runs from just before the envelope is sent to the moment the stand-in received
        # the call (both `time.perf_counter`, on this loop).
        answered = self.calls.expect(method, recipient)
        try:
            sent_at = time.perf_counter()
            ack = await self.send(*envelope, timeout)
            call = await asyncio.wait_for(answered, timeout)
        finally:
            self.calls.forget(method, recipient)
        return Answered(ack, call, call.received_at - sent_at)
