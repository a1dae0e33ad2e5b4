"""The faust application: regroup callbacks by item, keep item state, publish figures.

Run it with `python -m jingmin_metrics.stream worker` (what `jingmin worker --service
metrics` starts). faust is the runtime: agents, the consumer group, partition assignment.
Correctness does not rest on it: item state and, per owned source partition, the next offset
to read live in the metrics database and commit together, one transaction per batch
(`stream/batches.py`). On every assignment the processor claims its partitions there and
seeks each to its stored offset; a batch that does not start exactly there is dropped and
the partition sought back. Several processors share the partitions; the exporter, the API
and the daily publisher read the figures each batch committed from that database.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import asyncpg
import faust
from aiokafka import AIOKafkaProducer
from eventkit import db, kafka, topics
from eventkit.contracts import SchemaRegistry
from eventkit.devstack import service_topics
from eventkit.service import TopicSpec
from eventkit.telemetry import CONSUMER_LAG
from faust.types import TP

from jingmin_metrics.adapters.state_store import ITEMS, REGROUP, StateStore
from jingmin_metrics.service import DEAD_LETTER_TOPIC, SERVICE, processor_topics
from jingmin_metrics.settings import metrics_dsn, metrics_settings
from jingmin_metrics.stream import credentials
from jingmin_metrics.stream.batches import Apply, Record, SourceGroup
from jingmin_metrics.stream.processor import Processor
from jingmin_metrics.stream.records import envelope_of, headers_of, item_fact
from jingmin_metrics.stream.sources import SOURCES
from jingmin_metrics.stream.telemetry import FACTS, OWNED, REBUILDS, SEEKS
from jingmin_metrics.stream.validation import FastValidation

log = logging.getLogger(__name__)

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
    web_enabled=False,
    datadir=str(settings.metrics_faust_datadir),
    broker_session_timeout=settings.metrics_session_timeout_seconds,
    broker_heartbeat_interval=1.0,
    broker_rebalance_timeout=settings.metrics_rebalance_timeout_seconds,
    consumer_auto_offset_reset="earliest",
)

direct = [s.topic for s in SOURCES if s.regroup is None]
regrouping = {s.topic: s for s in SOURCES if s.regroup is not None}
item_topic = app.topic(*direct, REGROUPED, key_type=bytes, value_type=bytes)
ITEM_TOPICS = frozenset([*direct, REGROUPED])
regroup_topic = app.topic(*regrouping, key_type=bytes, value_type=bytes) if regrouping else None

processor = Processor()
_validator = FastValidation(SchemaRegistry.load()) if settings.metrics_validate else None
_producer: AIOKafkaProducer | None = None
_groups: dict[str, SourceGroup] = {}
# One batch or assignment at a time per role: an assignment must not reload a partition
# under a batch that is being applied.
_locks = {ITEMS: asyncio.Lock(), REGROUP: asyncio.Lock()}


async def groups() -> dict[str, SourceGroup]:
    if not _groups:
        pool: asyncpg.Pool = await db.create_pool(metrics_dsn(settings), min_size=1, max_size=4)
        store = StateStore(pool)
        # The regrouped topic lost (a broker refilled) loses what the regroup agent wrote:
        # it reads the callbacks again. Its writes are idempotent sends, so a refused
        # commit (that restart, or a zombie) claims the partition again.
        feeders = {REGROUPED: (REGROUP, frozenset(regrouping))}
        _groups[ITEMS] = SourceGroup(store, ITEMS, ITEM_TOPICS, processor, feeders=feeders)
        _groups[REGROUP] = SourceGroup(store, REGROUP, regrouping, reclaim_when_refused=True)
    return _groups


async def producer() -> AIOKafkaProducer:
    global _producer
    if _producer is None:
        _producer = kafka.producer(settings, client_id=f"{settings.metrics_app_id}-publisher")
        await _producer.start()
    return _producer


async def dead_letter(message: Any, reason: str) -> Any:
    """Send `message` to the dead-letter topic; the returned future resolves once stored."""
    log.error(
        "dead-lettering %s[%d]@%d: %s", message.topic, message.partition, message.offset, reason
    )
    headers = [(k, v) for k, v in headers_of(message.headers) if not k.startswith("dlq_")]
    headers += [
        ("dlq_reason", reason[:2000].encode()),
        ("dlq_consumer", settings.metrics_app_id.encode()),
        ("dlq_topic", message.topic.encode()),
        ("dlq_partition", str(message.partition).encode()),
        ("dlq_offset", str(message.offset).encode()),
    ]
    p = await producer()
    FACTS.labels("dead_lettered").inc()
    return await p.send(DEAD_LETTER_TOPIC, value=message.value, key=message.key, headers=headers)


async def _seek(seeks: Mapping[tuple[str, int], int]) -> None:
    for (topic, partition), offset in seeks.items():
        SEEKS.inc()
        await app.consumer.seek(TP(topic, partition), offset)


async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
    """Claim the assigned partitions in the database and seek each to its stored offset."""
    assigned: Iterable[TP] = args[0] if args else kwargs.get("assigned", ())
    tps = [(tp.topic, tp.partition) for tp in assigned]
    for role, group in (await groups()).items():
        async with _locks[role]:
            seeks = await group.adopt(tps)
            await _seek(seeks)
    REBUILDS.inc()
    OWNED.set(len(processor.partitions))
    log.info("own item partitions %s", sorted(processor.partitions))


# faust's public signal, sent at the end of each assignment (after its own recovery start).
app.on_partitions_assigned.connect(cast(Any, on_assigned))


@app.timer(2.0)  # type: ignore[misc]
async def watch_positions() -> None:
    """Seek back a partition whose client ran past what the database holds (see `check`),
    restart the regroup role if the regrouped topic was made again, and take over again the
    partitions whose claim moved on (`revalidate`)."""
    consumer: Any = app.consumer
    if not consumer.flow_active:
        return  # a rebalance: its assignment seeks every partition anyway
    try:
        await _watch(consumer)
    except (Exception, asyncio.CancelledError) as exc:
        if not kafka.transient(exc):
            raise
        # A timer that raises ends for good (and crashes the app): try again next tick.
        log.warning("watching positions failed (%s: %s)", type(exc).__name__, exc)


async def _watch(consumer: Any) -> None:
    assigned = consumer.assignment()
    for role, group in (await groups()).items():
        async with _locks[role]:
            seeks = {}
            highwaters: dict[tuple[str, int], int | None] = {}
            for tp in assigned:
                key = (tp.topic, tp.partition)
                if key in group.cursors:
                    highwaters[key] = consumer.highwater(tp)
                    offset = group.check(key, await consumer.position(tp), highwaters[key])
                    if offset is not None:
                        seeks[key] = offset
            # The lag that counts: faust's group commits only say what it handed over.
            CONSUMER_LAG.labels(SERVICE.name, f"{settings.metrics_app_id}.{role}").set(
                group.lag(highwaters)
            )
            await _seek(seeks)
            await group.restart_feeders()
    for role, group in (await groups()).items():
        async with _locks[role]:
            await _seek(await group.revalidate())


if regroup_topic is not None:

    @app.agent(regroup_topic)
    async def regroup(stream: Any) -> None:
        """Re-key follow-up streams (callbacks) by the item they follow, a batch at a time."""
        async for events in stream.take_events(settings.metrics_batch_size, within=0.2):
            await _batch(REGROUP, [e.message for e in events], _regroup)


async def _regroup(partition: int, records: Sequence[Record]) -> None:
    """Send each record to the regroup topic; return once all are stored (acks=all)."""
    p = await producer()
    futures = []
    for message in records:
        try:
            envelope = envelope_of(message, _validator)
            stream_id = envelope.streamid or envelope.subject
            root = regrouping[message.topic].regroup(stream_id, envelope.data)  # type: ignore[misc]
        except Exception as exc:
            futures.append(await dead_letter(message, f"{type(exc).__name__}: {exc}"))
            continue
        headers = [(k, v or b"") for k, v in headers_of(getattr(message, "headers", None))]
        futures.append(
            await p.send(REGROUPED, key=root.encode(), value=message.value, headers=headers)
        )
    await asyncio.gather(*futures)


@app.agent(item_topic)
async def apply_facts(stream: Any) -> None:
    """Apply batches of events to their items; each batch commits with its positions."""
    async for events in stream.take_events(settings.metrics_batch_size, within=0.2):
        await _batch(ITEMS, [e.message for e in events], _apply)


async def _batch(role: str, records: list[Any], apply: Apply) -> None:
    """One batch through the role's partitions; the broker or database away drops it (its
    partitions are read again from what the database holds) instead of crashing the app."""
    try:
        group = (await groups())[role]
        async with _locks[role]:
            await _seek(await group.batch(records, apply))
    except (Exception, asyncio.CancelledError) as exc:
        # Any failure but this task's own cancellation (`kafka.transient`): a poison record
        # never gets here (it is dead-lettered), so what fails is the broker or database.
        if not kafka.transient(exc):
            raise
        log.warning("%s batch dropped (%s: %s); retrying", role, type(exc).__name__, exc)
        await asyncio.sleep(1.0)


async def _apply(partition: int, records: Sequence[Record]) -> None:
    """Apply one partition's run of records to the processor (in memory until committed)."""
    futures = []
    for message in records:
        try:
            found = item_fact(message, REGROUPED, _validator)
        except Exception as exc:
            futures.append(await dead_letter(message, f"{type(exc).__name__}: {exc}"))
            continue
        if found is None:
            FACTS.labels("skipped").inc()
        elif processor.apply(partition, found.key, found.stream_id, found.version, found.fact):
            FACTS.labels("applied").inc()
        else:
            FACTS.labels("duplicate").inc()
    # Dead letters are stored before the batch's position moves past them.
    await asyncio.gather(*futures)


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
    bootstrap = settings.kafka_bootstrap_servers
    try:
        created = await topics.ensure_topics(bootstrap, internal_topics())
        # On a broker that makes topics on first use, this processor's own clients may have
        # made the regroup topic with the broker's default partition count before this timer
        # ran (a race on the dev broker, seen in the lost-cluster test): make it again.
        repaired = await topics.repair_partitions(
            bootstrap, processor_topics(settings.metrics_app_id, PARTITIONS)
        )
    except (Exception, asyncio.CancelledError) as exc:  # the broker may be away
        if not kafka.transient(exc):
            raise
        log.debug("cannot check topics: %s: %s", type(exc).__name__, exc)
        return
    if created:
        log.warning("created missing topics %s (was the cluster lost?)", created)
    if repaired:
        log.warning(
            "made %s again with %d partitions (the broker had made it on first use)",
            repaired,
            PARTITIONS,
        )


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
