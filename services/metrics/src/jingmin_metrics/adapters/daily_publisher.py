"""Worker loop: publish each bureau day's public figures to `metrics.daily.public.v1`.

Follows the figures in the metrics database like the exporter does and publishes a record for every
(bureau, day) whose public figures changed (a late event revises a past day: the record is
sent again, with the same key). One publisher leads per metrics database (an advisory lock),
so several worker processes do not send the same revision twice; the record's ce_id is
derived from its content, so a duplicate that slips through is recognisable anyway.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from eventkit import kafka, topics
from eventkit.envelope import Envelope
from eventkit.worker import WorkerContext

from jingmin_metrics.adapters.figures_reader import FiguresReader
from jingmin_metrics.figures import public
from jingmin_metrics.figures.select import index
from jingmin_metrics.service import DAILY_TOPIC
from jingmin_metrics.settings import MetricsSettings, metrics_dsn, metrics_settings

log = logging.getLogger(__name__)

LEADER_LOCK = 0x6A6D_6461  # "jmda": the daily publisher's advisory lock
_NAMESPACE = uuid.UUID("0f4b9c0e-6a55-4b8e-9d7e-3d5c1a2b7f10")


def envelope(body: dict[str, Any], now: datetime) -> Envelope:
    content = json.dumps(body, sort_keys=True, separators=(",", ":"))
    key = f"{body['bureau']}/{body['day']}"
    return Envelope(
        id=str(uuid.uuid5(_NAMESPACE, content)),
        source=public.SOURCE,
        type=public.TYPE,
        subject=key,
        time=now,
        data={**body, "generated_at": now.isoformat().replace("+00:00", "Z")},
        dataschema=f"urn:jingmin:schema:{public.TYPE}",
        bureau=body["bureau"],
    )


async def published(bootstrap: str) -> dict[str, str]:
    """What the topic holds now: key -> content id (to send only what changed)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **kafka.security_options()
    )
    await consumer.start()
    seen: dict[str, str] = {}
    try:
        partitions = consumer.partitions_for_topic(DAILY_TOPIC) or set()
        if not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(DAILY_TOPIC) or set()
        tps = [TopicPartition(DAILY_TOPIC, p) for p in sorted(partitions)]
        if not tps:
            return seen
        ends = await topics.rewind(consumer, tps)
        async for r in topics.read_to_end(consumer, ends):
            if r.key is not None:
                seen[r.key.decode()] = dict(r.headers or []).get("ce_id", b"").decode()
        return seen
    finally:
        await consumer.stop()


class DailyPublisher:
    def __init__(self, settings: MetricsSettings) -> None:
        self.settings = settings
        self.reader = FiguresReader(metrics_dsn(settings))
        self.sent: dict[str, str] = {}
        self._version = -1

    async def publish_changes(self) -> int:
        if not self.reader.caught_up.is_set() or self.reader.view.version == self._version:
            return 0
        self._version = self.reader.view.version
        by_measure = index(self.reader.view.merged())
        now = datetime.now(UTC)
        producer = kafka.producer(self.settings)
        await producer.start()
        futures = []
        try:
            for bureau, day in sorted(public.bureau_days(by_measure)):
                env = envelope(public.daily(by_measure, bureau, day), now)
                key = env.subject
                if self.sent.get(key) == env.id:
                    continue
                futures.append(
                    await producer.send(
                        DAILY_TOPIC,
                        key=key.encode(),
                        value=env.kafka_value(),
                        headers=env.kafka_headers(),
                    )
                )
                self.sent[key] = env.id
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return len(futures)


async def run(ctx: WorkerContext) -> None:
    """Lead (one per metrics database) and publish changes every few seconds."""
    settings = metrics_settings()
    async with ctx.pool.acquire() as lock:
        while not ctx.stop.is_set():
            if await lock.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK):
                break
            try:
                await asyncio.wait_for(ctx.stop.wait(), 5.0)
            except TimeoutError:
                pass
        if ctx.stop.is_set():
            return
        try:
            publisher = DailyPublisher(settings)
            publisher.sent = await published(settings.kafka_bootstrap_servers)
            follow = asyncio.create_task(publisher.reader.run(ctx.stop))
            try:
                await ctx.repeat(publisher.publish_changes, 5.0, "daily public figures")
            finally:
                await asyncio.gather(follow, return_exceptions=True)
        finally:
            await lock.execute("SELECT pg_advisory_unlock($1)", LEADER_LOCK)
