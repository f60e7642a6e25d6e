"""The *tuned* floor: a bare Bolt app configured for speed, acking `/gpu` with a constant reply in the ack.

`AsyncApp` on the aiohttp Socket Mode adapter with `process_before_response=True`: the same stack and
settings gpubot uses, with no work in the listener, so it is close to what loopback allows. Run by the
benchmarks as a process of its own, exactly like `gpubot serve`:

    SLACK_BOT_TOKEN=xoxb-… SLACK_APP_TOKEN=xapp-… GPUBOT_SLACK_API_URL=http://127.0.0.1:…/api/ \
        python bench/floor_tuned.py

It prints `ready` on stderr once its Socket Mode connection is up and exits 0 on SIGTERM or SIGINT.
`app_home_opened` publishes a constant Home view, the floor for gpubot's Home tab. `floor_durable.py`
serves through `serve` too, with a durable write before each reply.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

REPLY_TEXT = "8 of 8 GPUs free"
REPLY_BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*8 of 8 GPUs free*"}}]
HOME_VIEW = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Your GPUs*"}}]}


# Work a floor does with each `/gpu` command before it replies: given the command's payload.
BeforeReply = Callable[[dict[str, Any]], Awaitable[None]]


async def serve(before_reply: BeforeReply | None = None) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code.

    Args:
        before_reply: awaited with each `/gpu` command's payload before it is acked (None: nothing).
    """
    api_url = os.environ["GPUBOT_SLACK_API_URL"]
    app = AsyncApp(
        client=AsyncWebClient(base_url=api_url, token=os.environ["SLACK_BOT_TOKEN"]), process_before_response=True
    )

    @app.command("/gpu")
    async def gpu(ack: AsyncAck, command: dict[str, Any]) -> None:
        if before_reply is not None:
            await before_reply(command)
        await ack(response_type="ephemeral", text=REPLY_TEXT, blocks=REPLY_BLOCKS)

    @app.event("app_home_opened")
    async def home(event: dict[str, Any], client: AsyncWebClient) -> None:
        await client.views_publish(user_id=event["user"], view=HOME_VIEW)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    handler = AsyncSocketModeHandler(app, os.environ["SLACK_APP_TOKEN"], web_client=AsyncWebClient(base_url=api_url))
    await handler.connect_async()
    print("ready", file=sys.stderr, flush=True)
    await stop.wait()
    await handler.close_async()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(serve()))
