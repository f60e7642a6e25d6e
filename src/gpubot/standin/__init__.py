"""A loopback Slack for end-to-end runs of the real daemon and the real slack_sdk clients.

It serves the Web API, response URLs and Socket Mode on 127.0.0.1 and records every call.
Tests, `gpubot demo` and the benchmarks use it, so it ships in the package and needs only
aiohttp and the standard library. Payload builders live in `gpubot.standin.payloads`.
"""

from gpubot.standin.calls import Ack, Call, StandinError, StandinTimeoutError
from gpubot.standin.facade import DEFAULT_APP_TOKEN, DEFAULT_BOT_TOKEN, DEFAULT_SCOPES, SlackStandin
from gpubot.standin.server import RESPONSE_URL_METHOD

__all__ = [
    "DEFAULT_APP_TOKEN",
    "DEFAULT_BOT_TOKEN",
    "DEFAULT_SCOPES",
    "RESPONSE_URL_METHOD",
    "Ack",
    "Call",
    "SlackStandin",
    "StandinError",
    "StandinTimeoutError",
]
