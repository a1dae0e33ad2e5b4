"""Faust's recovery high watermarks are the true ends of the changelog, on Tansu too.

Tansu answers ListOffsets short of the end when the last record batch held several
records; faust recovery trusted it and left the last changelog records of a partition
unread when a worker took it over (`stream/highwaters.py`).
"""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from eventkit import topics
from eventkit.service import TopicSpec
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from jingmin_metrics.stream import highwaters
from yarl import URL

pytestmark = pytest.mark.integration


async def test_recovery_reads_the_changelog_to_its_true_end(kafka_bootstrap: str) -> None:
    name = f"hw-{uuid.uuid4().hex[:8]}-changelog"
    await topics.ensure_topics(kafka_bootstrap, [TopicSpec(name, partitions=2)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        for size in (10, 5, 1, 3):  # batches of several records, as faust writes them
            sent = [await producer.send(name, b"v", key=b"k", partition=0) for _ in range(size)]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()

    highwaters.install()
    host, port = kafka_bootstrap.rsplit(":", 1)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        # Just what the driver's `_highwaters` reads of its consumer thread.
        thread: Any = SimpleNamespace(
            consumer=SimpleNamespace(in_transaction=False),
            app=SimpleNamespace(conf=SimpleNamespace(broker_credentials=None, ssl_context=None)),
            transport=SimpleNamespace(url=[URL(f"kafka://{host}:{port}")], default_port=9092),
            _ensure_consumer=lambda: consumer,
        )
        tps = [TP(name, 0), TP(name, 1)]
        found = await driver.AIOKafkaConsumerThread._highwaters(thread, tps)
    finally:
        await consumer.stop()
    assert found == {TP(name, 0): 19, TP(name, 1): 0}
