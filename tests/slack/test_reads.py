"""`StateReads`: a read runs on the event loop only when the store promised it would not wait."""

import asyncio
import threading
import time
from contextlib import contextmanager

import pytest

from gpubot.core.errors import GpubotError
from gpubot.slack import reads as reads_module
from gpubot.slack.reads import StateReads


def which_thread(*args):
    return threading.get_ident(), args


@contextmanager
def answering(in_memory):
    yield in_memory


@pytest.mark.parametrize("in_ack", [True, False])
def test_a_read_the_store_answers_from_memory_runs_on_the_event_loop(in_ack):
    async def main():
        thread, args = await StateReads(lambda: answering(True)).read(which_thread, "U1", 2, in_ack=in_ack)
        return thread == threading.get_ident(), args

    assert asyncio.run(main()) == (True, ("U1", 2))


@pytest.mark.parametrize("reads", [StateReads(lambda: answering(False)), StateReads()])
def test_any_other_read_runs_in_a_thread(reads):
    async def main():
        thread, _ = await reads.read(which_thread, in_ack=False)
        return thread != threading.get_ident()

    assert asyncio.run(main())


def test_a_read_for_an_ack_that_would_wait_too_long_is_cut_short(monkeypatch):
    monkeypatch.setattr(reads_module, "ACK_DEADLINE_S", 0.1)

    async def main():
        with pytest.raises(GpubotError, match="answering slowly"):
            await StateReads(lambda: answering(False)).read(time.sleep, 0.5, in_ack=True)
        await StateReads(lambda: answering(False)).read(time.sleep, 0.2, in_ack=False)  # after the ack: waits

    asyncio.run(main())
