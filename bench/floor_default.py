"""The *default* floor: a bare Bolt app as most Bolt bots are written, acking `/gpu` with a constant reply.

Sync `App` on the builtin Socket Mode adapter (`slack_bolt.adapter.socket_mode.SocketModeHandler`), all
defaults. Run by the benchmarks as a process of its own, exactly like `gpubot serve`:

    SLACK_BOT_TOKEN=xoxb-… SLACK_APP_TOKEN=xapp-… GPUBOT_SLACK_API_URL=http://127.0.0.1:…/api/ \
        python bench/floor_default.py

It prints `ready` on stderr once its Socket Mode connection is up and exits 0 on SIGTERM or SIGINT.
`app_home_opened` publishes a constant Home view, the floor for gpubot's Home tab.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient

REPLY_TEXT = "8 of 8 GPUs free"
REPLY_BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*8 of 8 GPUs free*"}}]
HOME_VIEW = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Your GPUs*"}}]}


def main() -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code."""
    client = WebClient(base_url=os.environ["GPUBOT_SLACK_API_URL"], token=os.environ["SLACK_BOT_TOKEN"])
    app = App(client=client)

    @app.command("/gpu")
    def gpu(ack: Any) -> None:
        ack(response_type="ephemeral", text=REPLY_TEXT, blocks=REPLY_BLOCKS)

    @app.event("app_home_opened")
    def home(event: dict[str, Any], client: WebClient) -> None:
        client.views_publish(user_id=event["user"], view=HOME_VIEW)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    handler = SocketModeHandler(app, os.environ["SLACK_APP_TOKEN"])
    handler.connect()
    print("ready", file=sys.stderr, flush=True)
    stop.wait()
    handler.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
