"""Long-running loops retry after a failure, and stop only when they are stopped.

A request inside the Kafka client whose connection closes (the broker was lost) can raise
CancelledError in the loop that awaited it. faust ends a timer on CancelledError for good,
so the metrics publisher stopped and no figure was published again (`make chaos`
broker-restart). Only a cancellation of the loop's own task may stop it.
"""

from __future__ import annotations

import asyncio

from eventkit.kafka import transient


async def test_a_cancelled_future_inside_the_client_is_a_failure_to_retry() -> None:
    request = asyncio.get_running_loop().create_future()
    request.cancel()
    try:
        await request
    except asyncio.CancelledError as exc:
        assert transient(exc)
    assert transient(TimeoutError("no high watermark"))
    assert not transient(KeyboardInterrupt())


async def test_cancelling_the_timer_itself_stops_it() -> None:
    started = asyncio.Event()

    async def timer() -> bool:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as exc:
            return transient(exc)
        return True

    task = asyncio.create_task(timer())
    await started.wait()
    task.cancel()
    assert await task is False
