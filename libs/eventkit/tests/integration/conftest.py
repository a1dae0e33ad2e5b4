"""Fixtures for the kernel's integration tests: a migrated database, fresh topics, a reader."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeAlias

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from eventkit import db, kafka, topics
from eventkit.outbox import envelope_for, message_for
from eventkit.service import TopicSpec
from eventkit.settings import KernelSettings
from eventkit.store import NewEvent, OutboxMessage, PostgresEventStore, RecordedEvent
from eventkit.testing import DatabaseFactory

Record: TypeAlias = ConsumerRecord[bytes, bytes]
NewTopic: TypeAlias = Callable[..., Awaitable[str]]
ReadTopic: TypeAlias = Callable[..., Awaitable[list[Record]]]
ToMessages: TypeAlias = Callable[[Sequence[RecordedEvent], str], list[OutboxMessage]]

SOURCE = "/jingmin/eventkit-tests"


@pytest.fixture
async def dsn(fresh_database: DatabaseFactory) -> str:
    """A fresh database with the kernel migrations, dropped after the test."""
    made: str = await fresh_database()
    return made


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    created = await db.create_pool(dsn, min_size=1, max_size=40)
    yield created
    try:
        await asyncio.wait_for(created.close(), 10)
    except TimeoutError:  # a test left a connection checked out; do not hang the session
        created.terminate()


@pytest.fixture
def pg_store(pool: asyncpg.Pool) -> PostgresEventStore:
    return PostgresEventStore(pool)


ProducerFactory: TypeAlias = Callable[..., Callable[[], AIOKafkaProducer]]


@pytest.fixture
async def producers(kafka_bootstrap: str) -> AsyncIterator[ProducerFactory]:
    """`producers(bootstrap)` is a relay's `make_producer`; every producer made is stopped.

    A relay keeps its producer after `drain()` (only `run()` closes it), and one whose
    start failed is never closed by it, so the test closes them all.
    """
    made: list[AIOKafkaProducer] = []

    def factory(bootstrap: str | Callable[[], str] | None = None) -> Callable[[], AIOKafkaProducer]:
        def make() -> AIOKafkaProducer:
            address = bootstrap() if callable(bootstrap) else bootstrap
            producer = kafka.producer(KernelSettings(), address or kafka_bootstrap)
            made.append(producer)
            return producer

        return make

    yield factory
    for producer in made:
        try:
            await producer.stop()
        except Exception:  # a producer that never connected may fail to stop; it is gone
            pass


@pytest.fixture
def new_topic(kafka_bootstrap: str) -> NewTopic:
    """Create a topic with a unique name (tests never share one) and return its name."""

    async def make(prefix: str = "test", partitions: int = 3) -> str:
        name = f"eventkit.{prefix}.{uuid.uuid4().hex[:12]}"
        await topics.ensure_topics(kafka_bootstrap, [TopicSpec(name, partitions=partitions)])
        return name

    return make


@pytest.fixture
def read_topic(kafka_bootstrap: str) -> ReadTopic:
    """Read every partition of a topic by explicit assignment (no slow group join).

    With `until`, reads until the predicate holds for what was read (or `timeout` passes);
    without it, reads up to the end offsets seen at the start. Records come back grouped
    by partition, each partition in offset order.
    """

    async def read(
        topic: str,
        until: Callable[[list[Record]], bool] | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> list[Record]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        by_partition: dict[int, list[Record]] = {}
        try:
            await consumer.topics()  # refresh metadata so the new topic's partitions are known
            parts = consumer.partitions_for_topic(topic) or set()
            assert parts, f"topic {topic} has no partitions"
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            if until is None:
                ends = await topics.rewind(consumer, tps)
            else:
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
                ends = {}
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                records = [r for p in by_partition.values() for r in p]
                if until is not None and until(records):
                    break
                if until is None and await _at_end(consumer, ends):
                    break
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for tp, batch in batches.items():
                    by_partition.setdefault(tp.partition, []).extend(batch)
        finally:
            await consumer.stop()
        return [r for p in sorted(by_partition) for r in by_partition[p]]

    return read


async def _at_end(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


def _to_messages(recorded: Sequence[RecordedEvent], topic: str) -> list[OutboxMessage]:
    return [
        message_for(
            e, envelope_for(e, source=SOURCE, type_=f"jingmin.test.{e.type}", data=e.data), topic
        )
        for e in recorded
    ]


@pytest.fixture
def to_messages() -> ToMessages:
    """The writer's mapping: recorded events to CloudEvents outbox rows on `topic`."""
    return _to_messages


@pytest.fixture
def new_event() -> Callable[..., NewEvent]:
    def make(n: int = 0, type_: str = "CaseReceived", **data: object) -> NewEvent:
        return NewEvent(
            type=type_,
            data={"n": n, "summary": "群众反映夜间施工噪音", **data},
            occurred_at=datetime.now(UTC),
            bureau="城关派出所",
            metadata={"correlation_id": f"corr-{n}"},
        )

    return make
