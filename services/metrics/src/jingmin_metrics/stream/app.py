"""The faust application: regroup callbacks by item, keep item state, publish figures.

Run it with `python -m jingmin_metrics.stream worker` (what `jingmin worker --service
metrics` starts). faust is the runtime: the worker CLI, the consumer group and partition
assignment, timers. The group shares out the partitions of the lease topic (one agent
subscribes to it; nothing is ever written there); a processor leased partition p reads
partition p of every source topic with its own Kafka client, outside any group, from the
offsets the metrics database holds. faust's stream delivery costs about 100 us of CPU per
record before any work is done (an empty agent handled 6,400-9,700 msg/s where a plain
consumer of the same topic read 92,000-99,000: README), which alone kept the processors
under a tenth of a plain consumer's rate.

Correctness does not rest on either client: item state and, per owned source partition, the
next offset to read live in the metrics database and commit together, one transaction per
batch (`stream/batches.py`). On every assignment the processor claims its partitions there
and seeks each to its stored offset; a batch that does not start exactly there is dropped and
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
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
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
REGROUPED, LEASES = (t.name for t in processor_topics(settings.metrics_app_id, PARTITIONS))


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
ITEM_TOPICS = frozenset([*direct, REGROUPED])
REGROUP_TOPICS = frozenset(regrouping)
SOURCE_TOPICS = ITEM_TOPICS | REGROUP_TOPICS
lease_topic = app.topic(LEASES, key_type=bytes, value_type=bytes)

processor = Processor()
_validator = FastValidation(SchemaRegistry.load()) if settings.metrics_validate else None
_producer: AIOKafkaProducer | None = None
_reader: AIOKafkaConsumer | None = None
_groups: dict[str, SourceGroup] = {}
# One read, batch, assignment or check at a time: an assignment must not reload a partition
# under a batch that is being applied, nor change the reader's partitions under a fetch.
_lock = asyncio.Lock()
# Set while this processor holds leases (between an assignment and the next revocation).
_leased = asyncio.Event()


async def groups() -> dict[str, SourceGroup]:
    if not _groups:
        # A processor paused in the middle of a batch's transaction (a zombie: SIGSTOP, a
        # frozen VM) would hold its partitions' owner rows locked, and the new owner's claim
        # would wait for it forever. The server ends such a transaction well before the group
        # gives the partitions away (half the session timeout); the zombie's batch then fails.
        idle_ms = int(settings.metrics_session_timeout_seconds * 500)
        pool: asyncpg.Pool = await db.create_pool(
            metrics_dsn(settings),
            min_size=1,
            max_size=4,
            server_settings={"idle_in_transaction_session_timeout": str(idle_ms)},
        )
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


async def reader() -> AIOKafkaConsumer:
    """The client that reads the source partitions this processor leases (no group: which
    partitions and from where is decided here, from the leases and the database)."""
    global _reader
    if _reader is None:
        _reader = kafka.reader(
            settings,
            client_id=f"{settings.metrics_app_id}-reader",
            max_poll_records=settings.metrics_batch_size,
        )
        await _reader.start()
    return _reader


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
    r = await reader()
    assigned = r.assignment()
    for (topic, partition), offset in seeks.items():
        tp = TopicPartition(topic, partition)
        if tp in assigned:  # one no longer leased is sought when leased again
            SEEKS.inc()
            r.seek(tp, offset)


def leased_sources(assigned: Iterable[TP]) -> list[tuple[str, int]]:
    """The source partitions that leased lease partitions stand for."""
    leased = sorted({tp.partition for tp in assigned if tp.topic == LEASES})
    return [(topic, p) for topic in sorted(SOURCE_TOPICS) for p in leased]


async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
    """Claim the leased partitions in the database and seek each to its stored offset."""
    assigned: Iterable[TP] = args[0] if args else kwargs.get("assigned", ())
    tps = leased_sources(assigned)
    async with _lock:
        r = await reader()
        if tps:
            r.assign([TopicPartition(t, p) for t, p in tps])
        else:  # more processors than partitions: this one waits, fetching nothing
            r.pause(*r.assignment())
        for group in (await groups()).values():
            await _seek(await group.adopt(tps))
        if tps:
            _leased.set()
    REBUILDS.inc()
    OWNED.set(len(processor.partitions))
    log.info("own item partitions %s", sorted(processor.partitions))


async def on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
    """Stop reading until the next assignment says what this processor still leases (its
    memory stays: the assignment keeps what nobody claimed in between)."""
    _leased.clear()


# faust's public signals, sent at the start and the end of each rebalance.
app.on_partitions_assigned.connect(cast(Any, on_assigned))
app.on_partitions_revoked.connect(cast(Any, on_revoked))


async def on_shutdown(sender: Any, *args: Any, **kwargs: Any) -> None:
    _leased.clear()
    if _reader is not None:
        await _reader.stop()


app.on_before_shutdown.connect(cast(Any, on_shutdown))


@app.agent(lease_topic)
async def leases(stream: Any) -> None:
    """Subscribes the consumer group to the lease topic; nothing is ever written to it."""
    async for _event in stream.events():
        log.warning("ignoring a record on the lease topic %s", LEASES)


@app.task  # type: ignore[misc]
async def read_sources() -> None:
    """Read the leased source partitions a batch at a time, into the roles that own them."""
    while True:
        await _leased.wait()
        try:
            async with _lock:
                if not _leased.is_set():
                    continue
                r = await reader()
                fetched = await r.getmany(timeout_ms=100, max_records=settings.metrics_batch_size)
                await _dispatch(fetched)
        except (Exception, asyncio.CancelledError) as exc:
            if not kafka.transient(exc):
                raise
            log.warning("reading the sources failed (%s: %s); retrying", type(exc).__name__, exc)
            await asyncio.sleep(1.0)


async def _dispatch(fetched: Mapping[TopicPartition, list[Any]]) -> None:
    items: list[Any] = []
    callbacks: list[Any] = []
    for tp, records in fetched.items():
        (callbacks if tp.topic in REGROUP_TOPICS else items).extend(records)
    # Callbacks first: the items role then may find them regrouped in this same pass.
    if callbacks:
        await _batch(REGROUP, callbacks, _regroup)
    if items:
        await _batch(ITEMS, items, _apply)


@app.timer(2.0)  # type: ignore[misc]
async def watch_positions() -> None:
    """Seek back a partition whose client ran past what the database holds (see `check`),
    restart the regroup role if the regrouped topic was made again, and take over again the
    partitions whose claim moved on (`revalidate`)."""
    if not _leased.is_set():
        return  # a rebalance: its assignment seeks every partition anyway
    try:
        async with _lock:
            await _watch(await reader())
    except (Exception, asyncio.CancelledError) as exc:
        if not kafka.transient(exc):
            raise
        # A timer that raises ends for good (and crashes the app): try again next tick.
        log.warning("watching positions failed (%s: %s)", type(exc).__name__, exc)


async def _watch(consumer: AIOKafkaConsumer) -> None:
    assigned = consumer.assignment()
    for role, group in (await groups()).items():
        seeks = {}
        highwaters: dict[tuple[str, int], int | None] = {}
        for tp in assigned:
            key = (tp.topic, tp.partition)
            if key in group.cursors:
                highwaters[key] = consumer.highwater(tp)
                position = await asyncio.wait_for(consumer.position(tp), 5.0)
                offset = group.check(key, position, highwaters[key])
                if offset is not None:
                    seeks[key] = offset
        # The lag that counts: from the positions the database holds.
        CONSUMER_LAG.labels(SERVICE.name, f"{settings.metrics_app_id}.{role}").set(
            group.lag(highwaters)
        )
        await _seek(seeks)
        await group.restart_feeders()
    for group in (await groups()).values():
        await _seek(await group.revalidate())


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


async def _batch(role: str, records: list[Any], apply: Apply) -> None:
    """One batch through the role's partitions (the caller holds `_lock`); the broker or
    database away drops it (its partitions are read again from what the database holds)
    instead of crashing the app."""
    try:
        group = (await groups())[role]
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
