"""What `gpubot serve` and `gpubot agent` share: a stop on SIGTERM or SIGINT, every resource unwound, systemd told."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable

from gpubot.daemon.sd_notify import SystemdNotifier
from gpubot.settings import Settings

# What runs until the stop: it registers each resource's cleanup on the stack where it makes it.
Body = Callable[[contextlib.AsyncExitStack, SystemdNotifier, asyncio.Event], Awaitable[int]]


async def run_until_stopped(settings: Settings, body: Body) -> int:
    """Run `body` with an exit stack, the systemd notifier and the stop event; return its exit code.

    Each resource registers its cleanup where it is made; they unwind in reverse, every one bounded, so
    the exit stays within systemd's stop time-out whatever a task does.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        # READY/STATUS/WATCHDOG/STOPPING for systemd (no-ops outside it).
        notifier = SystemdNotifier(settings.notify_socket)
        stack.callback(notifier.close)
        try:
            return await body(stack, notifier, stop)
        finally:
            notifier.stopping()  # before anything below unwinds
