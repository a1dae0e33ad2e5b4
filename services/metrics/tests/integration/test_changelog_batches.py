"""The processors' changelog writes leave Tansu's ListOffsets answer exact.

faust recovers a table's changelog partition only up to the end that ListOffsets reports.
Tansu reports the base offset of the partition's last record batch plus one, short of the
end whenever that batch holds several records; a worker taking a partition over then missed
the tail of the last batch, and the facts in it were never counted (an intermittent loss in
`test_oracle`). The processors' producer therefore writes one record per batch.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from eventkit import topics
from eventkit.service import TopicSpec

pytestmark = pytest.mark.integration


async def test_changelog_writes_back_to_back_leave_listoffsets_at_the_true_end(
    kafka_bootstrap: str,
) -> None:
    from jingmin_metrics.stream.app import app

    name = f"changelog-batches-{uuid.uuid4().hex[:8]}"
    await topics.ensure_topics(kafka_bootstrap, [TopicSpec(name, partitions=1, compacted=True)])
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        acks="all",
        max_batch_size=app.conf.producer_max_batch_size,
        linger_ms=int((app.conf.producer_linger or 0) * 1000),
    )
    await producer.start()
    try:
        # As faust's producer buffer sends table writes: appended back to back, then flushed.
        futures = [
            await producer.send(name, key=f"item-{i}".encode(), value=b"x" * 200, partition=0)
            for i in range(300)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    tp = TopicPartition(name, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        listed = (await consumer.end_offsets([tp]))[tp]
        true = (await topics.end_offsets(consumer, [tp]))[tp]
    finally:
        await consumer.stop()
    assert true == 300
    assert listed == true
