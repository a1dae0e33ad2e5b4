"""The idempotent consumer: effects apply once however often a message arrives, a failing
handler leaves no trace but a dead letter, and poison never stops the partition."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from eventkit import kafka
from eventkit.consumer import IdempotentConsumer, make_consumer
from eventkit.envelope import Envelope
from eventkit.settings import KernelSettings
from eventkit.testing import wait_for

pytestmark = pytest.mark.integration

Record: TypeAlias = ConsumerRecord[bytes, bytes]
NewTopic: TypeAlias = Callable[..., Awaitable[str]]
ReadTopic: TypeAlias = Callable[..., Awaitable[list[Record]]]


@pytest.fixture(scope="module")
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    made = kafka.producer(KernelSettings(), kafka_bootstrap)
    await made.start()
    yield made
    await made.stop()


@pytest.fixture
async def effects(pool: asyncpg.Pool) -> asyncpg.Pool:
    """A table the handler writes to: the visible effect of applying a message."""
    await pool.execute(
        "CREATE TABLE notified (message_id text PRIMARY KEY, case_id text, note text)"
    )
    return pool


@dataclass
class Handler:
    """Writes one row per message; can be told to fail after writing, some number of times."""

    fail_times: dict[str, int] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    async def __call__(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        self.calls.append(envelope.id)
        await conn.execute(
            "INSERT INTO notified VALUES ($1, $2, $3)",
            envelope.id,
            envelope.subject,
            envelope.data.get("note"),
        )
        if self.fail_times.get(envelope.id, 0) > 0:
            self.fail_times[envelope.id] -= 1
            raise RuntimeError("downstream said no")


def envelope(note: str = "已回访", **kw: Any) -> Envelope:
    attrs: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "source": "/jingmin/visits",
        "type": "jingmin.visits.Done",
        "subject": "case-7",
        "time": datetime.now(UTC),
        "data": {"note": note},
        "streamid": "case-7",
        "streamversion": 1,
        **kw,
    }
    return Envelope(**attrs)


def record(
    value: bytes | None,
    headers: list[tuple[str, bytes]],
    *,
    topic: str = "in",
    offset: int = 0,
    key: bytes | None = b"case-7",
) -> Record:
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=headers,
    )


def record_of(env: Envelope, **kw: Any) -> Record:
    return record(env.kafka_value(), env.kafka_headers(), **kw)


def consumer_for(
    pool: asyncpg.Pool, producer: AIOKafkaProducer, dlq: str, handler: Handler, **kw: Any
) -> IdempotentConsumer:
    options: dict[str, Any] = {"retries": 3, "retry_delay": 0.01, **kw}
    return IdempotentConsumer(
        pool,
        name=f"notify-{uuid.uuid4().hex[:6]}",
        service="visits",
        handler=handler,
        producer=producer,
        dead_letter_topic=dlq,
        **options,
    )


async def rows(pool: asyncpg.Pool, table: str) -> int:
    count: int = await pool.fetchval(f"SELECT count(*) FROM {table}")
    return count


def headers(rec: Record) -> Mapping[str, str]:
    return {k: v.decode() for k, v in rec.headers}


async def test_the_same_message_delivered_twice_is_applied_once(
    effects: asyncpg.Pool,
    producer: AIOKafkaProducer,
    new_topic: NewTopic,
) -> None:
    dlq = await new_topic("dlq", partitions=1)
    handler = Handler()
    consumer = consumer_for(effects, producer, dlq, handler)
    env = envelope()

    assert await consumer.handle(record_of(env, offset=5)) == "applied"
    # A redelivery after a rebalance, and a replayed copy at another offset.
    assert await consumer.handle(record_of(env, offset=5)) == "duplicate"
    assert await consumer.handle(record_of(env, offset=900)) == "duplicate"

    assert await rows(effects, "notified") == 1
    assert await effects.fetchval("SELECT note FROM notified") == "已回访"
    assert (
        await effects.fetchval(
            "SELECT count(*) FROM processed_messages WHERE consumer = $1 AND message_id = $2",
            consumer.name,
            env.id,
        )
        == 1
    )
    # Another consumer on the same database tracks its own progress.
    other = consumer_for(effects, producer, dlq, Handler())
    assert await other.handle(record_of(envelope())) == "applied"


async def test_concurrent_redeliveries_apply_once(
    effects: asyncpg.Pool,
    producer: AIOKafkaProducer,
    new_topic: NewTopic,
) -> None:
    dlq = await new_topic("dlq", partitions=1)
    consumer = consumer_for(effects, producer, dlq, Handler())
    env = envelope()

    outcomes = await asyncio.gather(*(consumer.handle(record_of(env)) for _ in range(8)))

    assert sorted(outcomes) == ["applied"] + ["duplicate"] * 7
    assert await rows(effects, "notified") == 1


async def test_a_transient_handler_failure_is_retried_and_applied_once(
    effects: asyncpg.Pool,
    producer: AIOKafkaProducer,
    new_topic: NewTopic,
    read_topic: ReadTopic,
) -> None:
    dlq = await new_topic("dlq", partitions=1)
    env = envelope()
    handler = Handler(fail_times={env.id: 2})
    consumer = consumer_for(effects, producer, dlq, handler)

    assert await consumer.handle(record_of(env)) == "applied"

    assert handler.calls == [env.id] * 3
    assert await rows(effects, "notified") == 1  # the failed attempts left nothing
    assert await read_topic(dlq) == []


async def test_a_database_outage_longer_than_the_retries_dead_letters_nothing(
    effects: asyncpg.Pool,
    producer: AIOKafkaProducer,
    new_topic: NewTopic,
    read_topic: ReadTopic,
) -> None:
    dlq = await new_topic("dlq", partitions=1)
    env = envelope()
    failures = {"left": 6}  # twice the retry budget

    async def flaky(conn: asyncpg.Connection, e: Envelope) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise asyncpg.CannotConnectNowError("the database system is starting up")
        await conn.execute("INSERT INTO notified (message_id, note) VALUES ($1, $2)", e.id, "x")

    consumer = consumer_for(effects, producer, dlq, flaky)

    assert await consumer.handle(record_of(env)) == "applied"
    assert await rows(effects, "notified") == 1
    assert await read_topic(dlq) == []


async def test_a_handler_that_keeps_failing_rolls_back_and_dead_letters(
    effects: asyncpg.Pool,
    producer: AIOKafkaProducer,
    new_topic: NewTopic,
    read_topic: ReadTopic,
) -> None:
    dlq = await new_topic("dlq", partitions=1)
    env = envelope()
    handler = Handler(fail_times={env.id: 99})
    consumer = consumer_for(effects, producer, dlq, handler)
    original = record_of(env, topic="visits.case.events.v1", offset=41)

    assert await consumer.handle(original) == "dead_lettered"

    assert handler.calls == [env.id] * 3
    assert await rows(effects, "notified") == 0
    assert await rows(effects, "processed_messages") == 0
    (dead,) = await read_topic(dlq, until=lambda rs: len(rs) >= 1)
    meta = headers(dead)
    assert meta["dlq_reason"] == "handler-error: RuntimeError: downstream said no"
    assert meta["dlq_consumer"] == consumer.name
    assert (meta["dlq_topic"], meta["dlq_partition"], meta["dlq_offset"]) == (
        "visits.case.events.v1",
        "0",
        "41",
    )
    # The original message, untouched, so it can be replayed after a fix.
    assert (dead.key, dead.value) == (original.key, original.value)
    assert Envelope.from_kafka(dead.value, list(dead.headers)) == env
    # Once fixed, the same message applies (nothing was recorded as processed).
    assert await consumer_for(effects, producer, dlq, Handler()).handle(original) == "applied"


@pytest.mark.parametrize(
    ("value", "drop", "why"),
    [
        (b"\xff\xfe not json at all", None, "body is not JSON"),
        (b"[1, 2, 3]", None, "body must be a JSON object"),
        (None, None, "body is not JSON"),
        (b'{"note": "x"}', "ce_id", "missing CloudEvents attributes: id"),
        (b'{"note": "x"}', "ce_type", "missing CloudEvents attributes: type"),
    ],
)
async def test_undecodable_messages_go_to_the_dead_letter_topic(
    effects: asyncpg.Pool,
    producer: AIOKafkaProducer,
    new_topic: NewTopic,
    read_topic: ReadTopic,
    value: bytes | None,
    drop: str | None,
    why: str,
) -> None:
    dlq = await new_topic("dlq", partitions=1)
    handler = Handler()
    consumer = consumer_for(effects, producer, dlq, handler)
    hdrs = [(k, v) for k, v in envelope().kafka_headers() if k != drop]

    assert await consumer.handle(record(value, hdrs, offset=3)) == "dead_lettered"

    assert handler.calls == []
    (dead,) = await read_topic(dlq, until=lambda rs: len(rs) >= 1)
    reason = headers(dead)["dlq_reason"]
    assert reason.startswith("undecodable: ") and why in reason
    assert dead.value == value


async def test_a_message_failing_validation_is_dead_lettered_as_schema_invalid(
    effects: asyncpg.Pool,
    producer: AIOKafkaProducer,
    new_topic: NewTopic,
    read_topic: ReadTopic,
) -> None:
    dlq = await new_topic("dlq", partitions=1)

    def validate(type_: str, data: Mapping[str, Any]) -> None:
        if "note" not in data:
            raise ValueError(f"{type_}: 'note' is a required property")

    handler = Handler()
    consumer = consumer_for(effects, producer, dlq, handler, validate=validate)

    assert await consumer.handle(record_of(envelope(data={"other": 1}))) == "dead_lettered"
    assert await consumer.handle(record_of(envelope())) == "applied"

    assert len(handler.calls) == 1
    (dead,) = await read_topic(dlq, until=lambda rs: len(rs) >= 1)
    assert headers(dead)["dlq_reason"] == (
        "schema-invalid: jingmin.visits.Done: 'note' is a required property"
    )


async def test_dead_lettering_a_dead_letter_keeps_only_the_latest_reason(
    effects: asyncpg.Pool,
    producer: AIOKafkaProducer,
    new_topic: NewTopic,
    read_topic: ReadTopic,
) -> None:
    dlq = await new_topic("dlq", partitions=1)
    consumer = consumer_for(effects, producer, dlq, Handler())
    stale = [("dlq_reason", b"old reason"), ("dlq_offset", b"1"), ("ce_id", b"x")]

    assert await consumer.handle(record(b"garbage", stale)) == "dead_lettered"

    (dead,) = await read_topic(dlq, until=lambda rs: len(rs) >= 1)
    names = [k for k, _ in dead.headers]
    assert names.count("dlq_reason") == 1 and names.count("dlq_offset") == 1
    assert headers(dead)["dlq_reason"].startswith("undecodable")


async def test_run_consumes_a_topic_applies_once_and_survives_poison(
    effects: asyncpg.Pool,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
    new_topic: NewTopic,
    read_topic: ReadTopic,
) -> None:
    topic, dlq = await new_topic("visits", partitions=1), await new_topic("dlq", partitions=1)
    good, later, failing = envelope("第一次"), envelope("第二次"), envelope("会失败")
    handler = Handler(fail_times={failing.id: 99})
    consumer = consumer_for(effects, producer, dlq, handler)
    sends: list[tuple[bytes | None, list[tuple[str, bytes]]]] = [
        (good.kafka_value(), good.kafka_headers()),
        (b"\x00\x01 poison", good.kafka_headers()),  # undecodable
        (good.kafka_value(), good.kafka_headers()),  # duplicate
        (failing.kafka_value(), failing.kafka_headers()),  # handler error
        (json.dumps({"note": 1}).encode(), [("ce_type", b"t")]),  # missing attributes
        (later.kafka_value(), later.kafka_headers()),  # still applied
    ]
    for value, hdrs in sends:
        await producer.send_and_wait(topic, value=value, key=b"case-7", headers=hdrs)

    tp = TopicPartition(topic, 0)
    source = make_consumer(kafka_bootstrap, f"g-{uuid.uuid4().hex[:8]}", partitions=[tp])
    await source.start()
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(source, stop))
    try:

        async def done() -> bool:
            return await rows(effects, "notified") >= 2 and await source.committed(tp) == 6

        await wait_for(done, timeout=30, message="the consumer did not get through the topic")
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await source.stop()

    notes = [r["note"] for r in await effects.fetch("SELECT note FROM notified ORDER BY note")]
    assert sorted(notes) == sorted(["第一次", "第二次"])
    dead = await read_topic(dlq, until=lambda rs: len(rs) >= 3)
    reasons = sorted(headers(d)["dlq_reason"].split(":")[0] for d in dead)
    assert reasons == ["handler-error", "undecodable", "undecodable"]
