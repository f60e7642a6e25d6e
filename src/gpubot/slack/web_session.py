"""The HTTP session gpubot's Web API calls share: keep-alive connections, and JSON through orjson.

A Home view is tens of KiB of JSON, and `views.publish` answers with the view again. With the standard library, encoding
the one and decoding the other was a large share of a Home publish's CPU, and people opening Home at once wait for each
other's share; orjson does both several times faster (see BENCHMARKS.md, 'What was changed to meet the targets').
Everything else about the calls (retries, errors, rate limits) stays slack_sdk's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import orjson


def web_api_session(timeout_s: float) -> aiohttp.ClientSession:
    """A session for `AsyncWebClient(session=...)`; the caller closes it.

    Args:
        timeout_s: the longest one call may take, connection included.

    Returns:
        The session. Without one, slack_sdk opens a session and a TCP connection for every call.
    """
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        json_serialize=_dumps,
        response_class=_OrjsonResponse,
    )


def _dumps(value: Any) -> str:
    # aiohttp wants text and encodes it again as UTF-8; orjson's bytes are UTF-8 already, so this is a copy.
    return orjson.dumps(value).decode()


class _OrjsonResponse(aiohttp.ClientResponse):
    """A response whose `json()` decodes with orjson.

    slack_sdk calls `json()` with no arguments; an invalid body still raises a `json.JSONDecodeError`
    (orjson's error is a subclass), which slack_sdk turns into a `SlackApiError` as before.
    """

    async def json(
        self,
        *,
        encoding: str | None = None,
        loads: Callable[[str], Any] = orjson.loads,
        content_type: str | None = "application/json",
    ) -> Any:
        return await super().json(encoding=encoding, loads=loads, content_type=content_type)
