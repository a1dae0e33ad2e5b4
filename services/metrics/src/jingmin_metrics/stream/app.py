"""The faust application: regroup callbacks by item, keep item state, publish figures.

Run it with `python -m jingmin_metrics.stream worker` (what `jingmin worker --service
metrics` starts). Several workers share the partitions; each publishes the cells of the
partitions it owns to `metrics.figures.snapshot.v1`, so the figures do not depend on how
many run. State lives in the `items` table (changelog-backed): restart or rebalance
recovers it; a lost broker is refilled with `jingmin replay` and the workers rebuild.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from eventkit import kafka, topics
from eventkit.contracts import SchemaRegistry
from eventkit.devstack import service_topics
from eventkit.envelope import Envelope, EnvelopeError
from eventkit.service import TopicSpec
from faust.types import TP

from jingmin_metrics.domain import item as items
from jingmin_metrics.domain.facts import make_fact
from jingmin_metrics.figures import snapshot
from jingmin_metrics.service import (
    DEAD_LETTER_TOPIC,
    SERVICE,
    SNAPSHOT_TOPIC,
    processor_topics,
)
from jingmin_metrics.settings import metrics_settings
from jingmin_metrics.stream import credentials, gaps
from jingmin_metrics.stream.faustfix import MergingTable, acknowledge, install
from jingmin_metrics.stream.processor import Processor
from jingmin_metrics.stream.sources import SOURCES
from jingmin_metrics.stream.telemetry import FACTS, GAP_RECORDS, OWNED, PUBLISHED, REBUILDS
from jingmin_metrics.stream.validation import FastValidation

log = logging.getLogger(__name__)
install()

settings = metrics_settings()
PARTITIONS = settings.metrics_partitions
REGROUPED = processor_topics(settings.metrics_app_id, PARTITIONS)[0].name


def _broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip())


app = faust.App(
    settings.metrics_app_id,
    broker=_broker_url(settings.kafka_bootstrap_servers),
    store="memory://",
    topic_partitions=PARTITIONS,
    topic_replication_factor=int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1")),
    producer_acks=-1,
    broker_credentials=credentials.broker_credentials(settings),
    # producer_max_batch_size=1 on the dev broker only (see credentials.dev_broker_options).
    **credentials.dev_broker_options(settings),
    web_enabled=False,
    datadir=str(settings.metrics_faust_datadir),
    broker_session_timeout=settings.metrics_session_timeout_seconds,
    broker_heartbeat_interval=1.0,
    broker_rebalance_timeout=settings.metrics_rebalance_timeout_seconds,
    consumer_auto_offset_reset="earliest",
    table_standby_replicas=1,
)

regrouped = app.topic(
    REGROUPED, key_type=bytes, value_type=bytes, internal=True, partitions=PARTITIONS
)
direct = [s.topic for s in SOURCES if s.regroup is None]
regrouping = {s.topic: s for s in SOURCES if s.regroup is not None}
item_topic = app.topic(*direct, REGROUPED, key_type=bytes, value_type=bytes)
ITEM_TOPICS = frozenset([*direct, REGROUPED])
regroup_topic = app.topic(*regrouping, key_type=bytes, value_type=bytes) if regrouping else None

table: Any = app.tables.add(
    MergingTable(app=app, name="items", partitions=PARTITIONS, merge=items.merge_bytes)
)
processor = Processor()
expected = gaps.Expected()
_validator = FastValidation(SchemaRegistry.load()) if settings.metrics_validate else None
_producer: AIOKafkaProducer | None = None


async def producer() -> AIOKafkaProducer:
    global _producer
    if _producer is None:
        _producer = kafka.producer(settings, client_id=f"{settings.metrics_app_id}-publisher")
        await _producer.start()
    return _producer


def _headers(raw: Any) -> list[tuple[str, bytes | None]]:
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        return list(raw.items())
    return list(raw)


async def dead_letter(message: Any, reason: str) -> None:
    log.error(
        "dead-lettering %s[%d]@%d: %s", message.topic, message.partition, message.offset, reason
    )
    headers = [(k, v) for k, v in _headers(message.headers) if not k.startswith("dlq_")]
    headers += [
        ("dlq_reason", reason[:2000].encode()),
        ("dlq_consumer", settings.metrics_app_id.encode()),
        ("dlq_topic", message.topic.encode()),
        ("dlq_partition", str(message.partition).encode()),
        ("dlq_offset", str(message.offset).encode()),
    ]
    p = await producer()
    await (await p.send(DEAD_LETTER_TOPIC, value=message.value, key=message.key, headers=headers))
    FACTS.labels("dead_lettered").inc()


def _envelope(message: Any) -> Envelope:
    envelope = Envelope.from_kafka(message.value, _headers(message.headers))
    if _validator is not None and envelope.type.startswith("jingmin."):
        _validator(envelope.type, envelope.data)
    return envelope


async def _take(message: Any, handle: Callable[[Any], Awaitable[None]]) -> None:
    """Handle `message`, after any records of its partition the consumer skipped just
    before it (see `gaps`), read directly: usually there are none."""
    tp = message.tp
    skipped_from = expected.take(tp, message.offset)
    if skipped_from is not None:
        log.warning(
            "%s[%d]: offsets %d to %d never arrived; reading them directly",
            tp.topic,
            tp.partition,
            skipped_from,
            message.offset - 1,
        )
        GAP_RECORDS.inc(message.offset - skipped_from)
        for record in await _read_skipped(tp, skipped_from, message.offset):
            await handle(record)
        # faust never saw them: mark them done, or its commits stop short of the first one.
        await acknowledge(app.consumer, tp, skipped_from, message.offset)
    await handle(message)


@app.timer(2.0)  # type: ignore[misc]
async def reclaim_skipped() -> None:
    """Seek back a quiet partition whose client position ran past records never handed over.

    faust drops records it fetched for a partition it still counts as paused (around a
    rebalance), with the client's position already past them; no later record comes to
    reveal the jump when the partition goes quiet. Seeking to the offset due makes the
    client fetch them again (a false alarm costs duplicates only).
    """
    consumer: Any = app.consumer
    if not consumer.flow_active:
        return  # a rebalance: its seek sets every position anyway
    assigned = consumer.assignment()
    for tp, due in expected.idle():
        if tp not in assigned:
            continue
        position = await consumer.position(tp)
        if position is not None and position > due:
            log.warning(
                "%s[%d]: the client is at %d, records from %d never arrived; fetching again",
                tp.topic,
                tp.partition,
                position,
                due,
            )
            GAP_RECORDS.inc(position - due)
            await consumer.seek(tp, due)


async def _read_skipped(tp: TP, start: int, end: int) -> list[Any]:
    while True:
        try:
            return await gaps.read_range(settings.kafka_bootstrap_servers, tp, start, end)
        except (Exception, asyncio.CancelledError) as exc:
            # Never move on without them: faust has already counted them as done.
            if not kafka.transient(exc):
                raise
            log.warning("cannot read them yet (%s: %s); retrying", type(exc).__name__, exc)
            await asyncio.sleep(1.0)


if regroup_topic is not None:

    @app.agent(regroup_topic)
    async def regroup(stream: Any) -> None:
        """Re-key follow-up streams (callbacks) by the item they follow."""
        async for event in stream.events():
            await _take(event.message, _regroup)


async def _regroup(message: Any) -> None:
    try:
        envelope = _envelope(message)
        stream_id = envelope.streamid or envelope.subject
        root = regrouping[message.topic].regroup(stream_id, envelope.data)  # type: ignore[misc]
    except Exception as exc:
        await dead_letter(message, f"{type(exc).__name__}: {exc}")
        return
    headers = [(k, v or b"") for k, v in _headers(message.headers)]
    await regrouped.send(key=root.encode(), value=message.value, headers=headers)


@app.agent(item_topic)
async def apply_facts(stream: Any) -> None:
    """Apply each event to the state of its item, exactly once in effect.

    One event at a time, on purpose: faust's batching (`take_events`) acknowledges a
    buffered batch when the stream stops mid-batch, and a batch may hold events of a
    partition revoked while it filled. Measured here: batches lost events in a rebalance.
    Records the consumer skipped (see `gaps`) are read directly and applied first, in order.
    """
    async for event in stream.events():
        await _take(event.message, _apply)


async def _apply(message: Any) -> None:
    """Apply one record (faust's message, or a record read directly: same attributes)."""
    try:
        envelope = _envelope(message)
        if envelope.streamversion is None:
            raise EnvelopeError("no ce_streamversion: the event cannot be deduplicated")
        fact = make_fact(
            envelope.type,
            envelope.data,
            envelope.data.get("occurred_at") or envelope.attributes()["time"],
            envelope.bureau or envelope.data.get("bureau", ""),
            envelope.data.get("station", ""),
        )
    except Exception as exc:
        await dead_letter(message, f"{type(exc).__name__}: {exc}")
        return
    if fact is None:
        FACTS.labels("skipped").inc()
        return
    key = message.key if message.topic == REGROUPED else (envelope.streamid or "").encode()
    if not key:
        await dead_letter(message, "no item key")
        return
    partition = message.partition
    if not processor.owns(partition):
        _rebuild()
    # Namespaced by context: a complaint opened from an intake case keeps the case's id.
    context = envelope.type.split(".")[1] if envelope.type.count(".") >= 3 else "?"
    stream_id = f"{context}:{envelope.streamid or envelope.subject}"
    new = processor.apply(
        partition,
        key,
        stream_id,
        envelope.streamversion,
        fact,
        table.get(key),
        position=(message.topic, message.offset),
    )
    if new is None:
        FACTS.labels("duplicate").inc()
        return
    table[key] = new
    FACTS.labels("applied").inc()


def _active() -> set[int]:
    source = direct[0] if direct else REGROUPED
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == source}


def _rebuild() -> None:
    active = _active()
    data = getattr(table.data, "data", {})
    processor.rebuild(active, list(data.items()))
    REBUILDS.inc()
    OWNED.set(len(active))
    log.info("rebuilt cells of partitions %s from %d stored items", sorted(active), len(data))


def resume_points(assigned: set[TP]) -> dict[TP, int]:
    """Per owned item-source partition: the offset after the last event the table holds.

    Called by faust after each recovery, once the recover callback has rebuilt the cells.
    """
    if set(processor.partitions) != _active():
        _rebuild()
    points: dict[TP, int] = {}
    for tp in assigned:
        part = processor.partitions.get(tp.partition)
        if tp.topic in ITEM_TOPICS and part is not None:
            points[tp] = part.read.get(tp.topic, 0)
    return points


install(resume=resume_points, sought=expected.reset)


@table.on_recover  # type: ignore[misc]
async def on_recover() -> None:
    """After every rebalance's recovery: recompute the owned partitions' cells."""
    _rebuild()


async def _existing_keys(partition: int) -> set[bytes]:
    """Keys the snapshot partition holds now (to clear what a previous owner left)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        **kafka.security_options(settings),
    )
    await consumer.start()
    try:
        tp = TopicPartition(SNAPSHOT_TOPIC, partition)
        ends = await topics.rewind(consumer, [tp])
        live: set[bytes] = set()
        async for record in topics.read_to_end(consumer, ends):
            if record.key is None:
                continue
            if record.value is None:
                live.discard(record.key)
            else:
                live.add(record.key)
        return live
    finally:
        await consumer.stop()


async def publish(partitions: Sequence[int] | None = None) -> int:
    """Send the changed chunks of owned partitions (all of them after a rebuild)."""
    p = await producer()
    sent = 0
    futures = []
    for partition in sorted(partitions if partitions is not None else processor.partitions):
        part = processor.partitions.get(partition)
        if part is None:
            continue
        stale: set[bytes] = set()
        if part.needs_refresh:
            stale = await _existing_keys(partition)
            keys = set(part.cells) | part.dirty
            part.dirty = set()
        else:
            keys = processor.take_dirty(partition)
        for bureau, day in sorted(keys):
            key = snapshot.chunk_key(partition, bureau, day).encode()
            cells = part.cells.chunk((bureau, day))
            value = (
                snapshot.encode_chunk(partition, part.epoch, bureau, day, cells) if cells else None
            )
            stale.discard(key)
            futures.append(await p.send(SNAPSHOT_TOPIC, key=key, value=value, partition=partition))
        for key in sorted(stale):
            if key != snapshot.status_key(partition).encode():
                futures.append(
                    await p.send(SNAPSHOT_TOPIC, key=key, value=None, partition=partition)
                )
        if futures or part.needs_refresh or part.facts != part.published_facts:
            await asyncio.gather(*futures)
            sent += len(futures)
            futures = []
            status = snapshot.encode_status(
                partition,
                part.epoch,
                part.facts,
                len(part.contributions),
                time.time(),
                part.by_type,
            )
            sent_status = await (
                await p.send(
                    SNAPSHOT_TOPIC,
                    key=snapshot.status_key(partition).encode(),
                    value=status,
                    partition=partition,
                )
            )
            # A log that went back (a lost broker's topic made again) lost what was
            # published before: publish the whole partition again on the next tick.
            part.needs_refresh = sent_status.offset < part.status_offset
            part.status_offset = sent_status.offset
            part.published_facts = part.facts
            if part.needs_refresh:
                log.warning("snapshot partition %d went back; publishing it again", partition)
    PUBLISHED.inc(sent)
    return sent


@app.timer(settings.metrics_publish_interval_seconds)  # type: ignore[misc]
async def publish_changes() -> None:
    # Only partitions still owned: a worker that lost one must not overwrite its new owner.
    owned = _active()
    partitions = [p for p in processor.partitions if p in owned]
    try:
        await publish(partitions)
    except (Exception, asyncio.CancelledError) as exc:
        if not kafka.transient(exc):
            raise
        # A timer that raises crashes the whole faust app (and, with the broker away, its
        # stop cannot flush). Publishing is idempotent: rewrite these partitions whole on
        # the next tick, since the changes this attempt took may not have been sent.
        log.warning("publishing figures failed (%s: %s); retrying", type(exc).__name__, exc)
        for partition in partitions:
            part = processor.partitions.get(partition)
            if part is not None:
                part.needs_refresh = True


@app.timer(2.0)  # type: ignore[misc]
async def debug_dump() -> None:
    # Tests only (METRICS_DEBUG_DUMP): what this processor holds, to explain a mismatch.
    path = os.environ.get("METRICS_DEBUG_DUMP")
    if not path:
        return
    import json

    dump = {
        "partitions": {
            p: {"facts": part.facts, "by_type": dict(part.by_type)}
            for p, part in processor.partitions.items()
        },
        "items": {
            k.decode(): sorted(f"{sid}#{v}" for sid, fs in st["s"].items() for v in fs)
            for k, st in processor.states.items()
            if st.get("p") in processor.partitions
        },
    }
    text = json.dumps(dump)
    await asyncio.to_thread(Path(path).write_text, text)


@app.page("/metrics")
async def metrics_page(web: Any, request: Any) -> Any:
    """The processor's metrics on faust's web server too, when it runs (`--with-web`)."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    return web.bytes(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


@app.task  # type: ignore[misc]
async def serve_metrics() -> None:
    port = int(os.environ.get("METRICS_PROCESSOR_PORT", "0"))
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr="127.0.0.1")


def internal_topics() -> list[TopicSpec]:
    """Topics this app needs beyond the services' own, with the domain topics' partitions.

    Created up front: a broker that auto-creates topics on first use would give the regroup
    topic its default partition count, and the table would refuse to start.
    """
    return [*processor_topics(settings.metrics_app_id, PARTITIONS), *service_topics(SERVICE)]


@app.timer(10.0)  # type: ignore[misc]
async def keep_topics() -> None:
    """Recreate this app's topics when a lost cluster comes back without them.

    The runbook refills a lost cluster with the services' topics and `jingmin replay`; a
    processor that lived through the loss would otherwise wait on sends to the regroup
    topic and fail every offset commit (UnknownTopicOrPartition), its group never caught up.
    """
    try:
        created = await topics.ensure_topics(settings.kafka_bootstrap_servers, internal_topics())
    except (Exception, asyncio.CancelledError) as exc:  # the broker may be away
        if not kafka.transient(exc):
            raise
        log.debug("cannot check topics: %s: %s", type(exc).__name__, exc)
        return
    if created:
        log.warning("created missing topics %s (was the cluster lost?)", created)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of one processor process (`python -m jingmin_metrics.stream worker`)."""
    import sys

    # faust creates its data directory but not the parents.
    settings.metrics_faust_datadir.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(topics.ensure_topics(settings.kafka_bootstrap_servers, internal_topics()))
    args = list(argv if argv is not None else sys.argv[1:])
    # faust's CLI starts its web server unless told not to, whatever the app's settings say;
    # processors serve /metrics with prometheus_client instead (METRICS_PROCESSOR_PORT).
    if args[:1] == ["worker"] and not any(a.startswith("--with") for a in args):
        args.insert(1, "--without-web")
    sys.argv = ["jingmin-metrics-processor", *args]
    app.main()
