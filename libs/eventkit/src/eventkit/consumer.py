"""Idempotent consumer: effects and tracking commit together; poison goes to a DLQ."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from eventkit import kafka
from eventkit.envelope import Envelope, EnvelopeError
from eventkit.settings import KernelSettings
from eventkit.store import ConcurrencyConflict
from eventkit.telemetry import CONSUMER_LAG, CONSUMER_PROCESSED, kafka_span

log = logging.getLogger(__name__)

Handler = Callable[[asyncpg.Connection, Envelope], Awaitable[None]]

# Failures that say nothing about the message itself.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)
# A lost race is worth retrying (the handler decides again on fresh state), but not for
# ever: a handler that conflicts every time would stall its partition.
CONFLICT_RETRIES = 20
Validator = Callable[[str, Mapping[str, Any]], None]
Outcome = Literal["applied", "duplicate", "dead_lettered"]


class IdempotentConsumer:
    """Applies each message at most once in effect, however often it is delivered.

    The (consumer, ce_id) row is inserted in the same transaction as the handler's writes,
    so a crash before commit leaves neither, and a redelivery after commit finds the row.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        name: str,
        service: str,
        handler: Handler,
        producer: AIOKafkaProducer,
        dead_letter_topic: str,
        validate: Validator | None = None,
        retries: int = 3,
        retry_delay: float = 0.2,
    ) -> None:
        self.pool = pool
        self.name = name
        self.service = service
        self.handler = handler
        self.producer = producer
        self.dead_letter_topic = dead_letter_topic
        self.validate = validate
        self.retries = retries
        self.retry_delay = retry_delay

    async def handle(self, record: ConsumerRecord[bytes, bytes]) -> Outcome:
        headers = list(record.headers or [])
        try:
            envelope = Envelope.from_kafka(record.value, headers)
        except EnvelopeError as exc:
            return await self._dead_letter(record, f"undecodable: {exc}")
        if self.validate is not None:
            try:
                self.validate(envelope.type, envelope.data)
            except Exception as exc:  # unknown type or schema violation: both are poison
                return await self._dead_letter(record, f"schema-invalid: {exc}")
        error: BaseException | None = None
        attempt = 0
        outage = 0
        conflicts = 0
        while attempt < self.retries:
            try:
                with kafka_span("consume", record.topic, envelope.id, envelope.traceparent):
                    outcome = await self._apply(envelope)
                CONSUMER_PROCESSED.labels(self.service, self.name, outcome).inc()
                return outcome
            except TRANSIENT as exc:
                # The database, not the message: wait and try again for as long as it takes,
                # so an outage never sends good messages to the DLQ.
                outage += 1
                log.warning("transient failure for %s (%s); retrying", envelope.id, exc)
                await asyncio.sleep(min(self.retry_delay * 2 ** min(outage, 6), 10.0))
            except ConcurrencyConflict as exc:
                conflicts += 1
                if conflicts >= CONFLICT_RETRIES:
                    error, attempt = exc, self.retries
                    break
                await asyncio.sleep(self.retry_delay * min(conflicts, 10))
            except Exception as exc:
                error = exc
                attempt += 1
                log.warning(
                    "handler failed (attempt %d of %d) for %s",
                    attempt,
                    self.retries,
                    envelope.id,
                    exc_info=True,
                )
                await asyncio.sleep(self.retry_delay * 2**attempt)
        return await self._dead_letter(record, f"handler-error: {type(error).__name__}: {error}")

    async def _apply(self, envelope: Envelope) -> Outcome:
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                """INSERT INTO processed_messages (consumer, message_id) VALUES ($1, $2)
                   ON CONFLICT DO NOTHING RETURNING 1""",
                self.name,
                envelope.id,
            )
            if inserted is None:
                return "duplicate"
            await self.handler(conn, envelope)
        return "applied"

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str) -> Outcome:
        log.error(
            "dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason
        )
        headers = [(k, v) for k, v in (record.headers or []) if not k.startswith("dlq_")]
        headers += [
            ("dlq_reason", reason[:2000].encode()),
            ("dlq_consumer", self.name.encode()),
            ("dlq_topic", record.topic.encode()),
            ("dlq_partition", str(record.partition).encode()),
            ("dlq_offset", str(record.offset).encode()),
        ]
        # Waiting for the DLQ ack before moving on: the poison message must not vanish.
        await (
            await self.producer.send(
                self.dead_letter_topic, value=record.value, key=record.key, headers=headers
            )
        )
        CONSUMER_PROCESSED.labels(self.service, self.name, "dead_lettered").inc()
        return "dead_lettered"

    async def run(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        """Consume until `stop`; offsets are committed only after each batch is handled."""
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for _tp, records in batches.items():
                for record in records:
                    await self.handle(record)
            if batches:
                await consumer.commit()
            await self._observe_lag(consumer)

    async def _observe_lag(self, consumer: AIOKafkaConsumer) -> None:
        lag = 0
        for tp in consumer.assignment():
            end = consumer.highwater(tp)  # None until the partition was fetched once
            if end is not None:
                lag += max(0, end - await consumer.position(tp))
        CONSUMER_LAG.labels(self.service, self.name).set(lag)


def make_consumer(
    bootstrap: str,
    group_id: str,
    topics: Sequence[str] = (),
    partitions: Sequence[TopicPartition] = (),
    settings: KernelSettings | None = None,
    **overrides: Any,
) -> AIOKafkaConsumer:
    """A consumer with manual commits, the TLS/SASL settings every client shares, and short
    group timeouts only on the dev broker (kafka.group_timeouts). Without `settings` the
    process's environment decides."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        **kafka.group_timeouts(settings),
        "max_poll_interval_ms": 300000,
        **kafka.security_options(settings),
    }
    options.update(overrides)
    consumer = AIOKafkaConsumer(*topics, **options)
    if partitions:
        consumer.assign(list(partitions))
    return consumer


async def consume_until_stopped(
    settings: KernelSettings,
    stop: asyncio.Event,
    *,
    group_id: str,
    topics: Sequence[str],
    build: Callable[[AIOKafkaProducer], IdempotentConsumer],
) -> None:
    """One consumer session: a dead-letter producer, a group member on `topics`, and the
    IdempotentConsumer `build(producer)` makes, run until `stop` (or until the broker fails:
    the caller's `WorkerContext.repeat` starts a fresh session)."""
    producer = kafka.producer(settings)
    await producer.start()
    try:
        source = make_consumer(
            settings.kafka_bootstrap_servers, group_id, topics=topics, settings=settings
        )
        await source.start()
        try:
            await build(producer).run(source, stop)
        finally:
            await source.stop()
    finally:
        await producer.stop()
