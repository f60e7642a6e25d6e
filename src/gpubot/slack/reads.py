"""Where a listener's service call runs: on the event loop only when it cannot wait, else in a thread.

No database wait may hold up the event loop (the Socket Mode connection, every other person's command),
and no answer that goes into an ack may wait longer than Slack does: `before_ack` bounds the latter, and
`StateReads` runs a read on the loop only when the store promises it will not wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

from gpubot.core.errors import GpubotError

logger = logging.getLogger(__name__)

# Slack shows an error when the ack takes over 3 s; leave room for the reply to travel.
ACK_DEADLINE_S = 2.5
T = TypeVar("T")


async def before_ack(work: Callable[..., T], *args: Any) -> T:
    """Run blocking service work off the event loop, within the time Slack waits for the ack.

    Raises:
        GpubotError: the work did not finish in time. It may still complete (a database that was slow,
            not broken), so the message asks the person to look rather than saying it failed.
    """
    try:
        return await asyncio.wait_for(asyncio.to_thread(work, *args), ACK_DEADLINE_S)
    except asyncio.TimeoutError:
        logger.error("%s took longer than %.1f s", getattr(work, "__name__", work), ACK_DEADLINE_S)
        raise GpubotError(
            "gpubot's database is answering slowly, so I cannot tell you the outcome in time."
            " `/gpu status` in a moment shows whether it went through."
        ) from None


def _never_from_memory() -> AbstractContextManager[bool]:
    return nullcontext(False)


class StateReads:
    """Runs the service's read-only calls (the dashboard, a Home tab).

    Args:
        from_memory: the store's `answering_from_memory`: a context in which, when it yields True, those
            reads make no database call that could wait. Without one, every read goes to a thread.
    """

    def __init__(self, from_memory: Callable[[], AbstractContextManager[bool]] = _never_from_memory) -> None:
        self._from_memory = from_memory

    async def read(self, work: Callable[..., T], *args: Any, in_ack: bool) -> T:
        """`work(*args)`: on the event loop when the store answers from memory (a thread hop cost a
        `/gpu status` half of its CPU under load, issue 5), else in a thread, bounded by `before_ack` when
        the result goes into an ack (`in_ack`).

        Raises:
            GpubotError: from `work`, or (`in_ack`) the database did not answer in time.
        """
        with self._from_memory() as in_memory:
            if in_memory:
                return work(*args)
        if in_ack:
            return await before_ack(work, *args)
        return await asyncio.to_thread(work, *args)
