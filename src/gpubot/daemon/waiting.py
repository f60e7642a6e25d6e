"""Waits that a stop signal cuts short, and clean-up bounded in time: what every daemon's lifecycle needs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


async def stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `stop`; True when it was set."""
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiter}, timeout=seconds)
    finally:
        waiter.cancel()
    return stop.is_set()


async def within(work: Callable[[], Awaitable[None]], timeout_s: float) -> None:
    """Run `work`, giving up on it after `timeout_s`."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(work(), timeout_s)
