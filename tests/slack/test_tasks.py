"""`AfterAck.drain`: the work after an ack, and the work it starts, finish before shutdown or get cancelled."""

import asyncio

from gpubot.slack.tasks import AfterAck


def test_drain_waits_for_work_started_by_work_it_waits_for():
    after_ack = AfterAck()
    done: list[str] = []

    async def publish() -> None:
        await asyncio.sleep(0.01)
        done.append("publish")

    async def press() -> None:
        await asyncio.sleep(0.01)
        after_ack.spawn(publish(), "a Home publish")  # as a button press refreshes the Home tab
        done.append("press")

    async def main() -> None:
        after_ack.spawn(press(), "a button press")
        await after_ack.drain(1.0)

    asyncio.run(main())
    assert done == ["press", "publish"]


def test_drain_cancels_what_is_still_running_at_its_deadline():
    after_ack = AfterAck()

    cancelled: list[bool] = []

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> None:
        after_ack.spawn(stuck(), "stuck work")
        await after_ack.drain(0.05)
        await asyncio.sleep(0)

    asyncio.run(main())
    assert cancelled == [True]
