"""The snapshot reader reads the figures topic to its true end, on Tansu too.

Processors publish a partition's chunks and then its status record together, so they land
in one record batch. Tansu's ListOffsets answers with the base offset of the last batch
plus one: a reader that trusted it missed the status and the last chunks (`jingmin verify
metrics` reported "events not yet applied" for good), and one that compared it with its own
position took every such batch for a truncation and rebuilt its view over and over.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from eventkit import topics
from eventkit.service import TopicSpec
from jingmin_metrics.adapters.snapshot_reader import SnapshotReader
from jingmin_metrics.figures import snapshot

pytestmark = pytest.mark.integration

CELLS = {("cases.received", ("330602001", "call_110", "alarm", "urban")): 1}


async def _publish(bootstrap: str, topic: str, epoch: int, facts: int) -> None:
    """One partition's chunks and status in one batch, as `stream/app.publish` sends them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=50)
    await producer.start()
    try:
        sent = [
            await producer.send(
                topic,
                key=snapshot.chunk_key(0, "330602", f"2026-11-{day:02d}").encode(),
                value=snapshot.encode_chunk(0, epoch, "330602", f"2026-11-{day:02d}", CELLS),
                partition=0,
            )
            for day in range(1, 6)
        ]
        sent.append(
            await producer.send(
                topic,
                key=snapshot.status_key(0).encode(),
                value=snapshot.encode_status(0, epoch, facts, 5, time.time()),
                partition=0,
            )
        )
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def test_the_reader_sees_the_last_record_of_a_batch_and_no_false_truncation(
    metrics_broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"snapshot-{uuid.uuid4().hex[:8]}"
    await topics.ensure_topics(metrics_broker, [TopicSpec(topic, partitions=2)])
    await _publish(metrics_broker, topic, epoch=1, facts=5)

    view = await SnapshotReader(metrics_broker, topic).catch_up(timeout=20)
    assert view.status[0]["facts"] == 5  # the batch's last record
    assert len(view.chunks) == 5

    reader = SnapshotReader(metrics_broker, topic)
    stop = asyncio.Event()
    following = asyncio.create_task(reader.run(stop))
    try:
        await asyncio.wait_for(reader.caught_up.wait(), 20)
        await _publish(metrics_broker, topic, epoch=2, facts=9)
        deadline = time.monotonic() + 20
        while reader.view.status.get(0, {}).get("facts") != 9:
            assert time.monotonic() < deadline, reader.view.status
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.5)  # a few more fetches: any false truncation would show now
    finally:
        stop.set()
        await following
    assert reader.view.status[0]["facts"] == 9
    assert "truncated" not in caplog.text
