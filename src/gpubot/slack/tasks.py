"""Work that runs after the ack (it calls Slack), kept track of so none is lost silently or on shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger(__name__)


class AfterAck:
    """Starts coroutines as tasks, logs their failures, and waits for them on shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run `work` in the background, kept until it ends; a failure is logged as `what`, never raised."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(lambda done: self._finished(done, what))

    async def drain(self, timeout_s: float) -> None:
        """Let running work finish, then cancel what is left.

        The work running (e.g. a DM being updated), and the work it starts (the Home tab then republished),
        gets `timeout_s` in all.
        """
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._tasks:
            left_s = deadline - asyncio.get_running_loop().time()
            if left_s <= 0:
                break
            await asyncio.wait(set(self._tasks), timeout=left_s)
        for task in set(self._tasks):
            task.cancel()

    def _finished(self, task: asyncio.Task[None], what: str) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s failed", what, exc_info=task.exception())
