"""`eventkit.topics.end_offsets` finds the true end of a partition, on Tansu too.

The chaos suite's topic check reads every partition to its end. Tansu 0.6 answers
ListOffsets (what aiokafka's `end_offsets` sends) with the base offset of the partition's
last record batch plus one, so a reader that trusts it stops short whenever that batch held
several records; the relay and the metrics processors send such batches all the time.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from eventkit import topics
from eventkit.service import TopicSpec

pytestmark = pytest.mark.integration


async def test_end_offsets_counts_every_record_of_multi_record_batches(
    kafka_bootstrap: str,
) -> None:
    name = f"chaos-ends-{uuid.uuid4().hex[:8]}"
    await topics.ensure_topics(kafka_bootstrap, [TopicSpec(name, partitions=2)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        # Batches of 10, 5, 1 and 3 records on partition 0 (sent together, acked together);
        # partition 1 stays empty.
        for size in (10, 5, 1, 3):
            futures = [
                await producer.send(name, value=b"v", key=b"k", partition=0) for _ in range(size)
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    tps = [TopicPartition(name, 0), TopicPartition(name, 1)]
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await topics.end_offsets(consumer, tps)
        # The helper moved the positions: reading from the start sees every record.
        await consumer.seek_to_beginning(*tps)
        seen = [r async for r in topics.read_to_end(consumer, ends)]
        # A log that lost records since its end was taken (a lost broker, refilled) never
        # reaches that end again: the reader says so instead of waiting for ever.
        await consumer.seek_to_beginning(*tps)
        with pytest.raises(topics.Truncated):
            async for _ in topics.read_to_end(consumer, {tps[0]: 25, tps[1]: 0}):
                pass
    finally:
        await consumer.stop()
    assert ends == {tps[0]: 19, tps[1]: 0}
    assert len(seen) == 19
