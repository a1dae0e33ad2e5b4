"""The outbox relay against real PostgreSQL and a real Kafka-protocol broker: CloudEvents on
the wire, retries through an outage, one leader per database, and no loss under kill -9."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event
from cloudevents.core.v1.event import CloudEvent
from eventkit import db
from eventkit.relay import OutboxRelay
from eventkit.store import NewEvent, OutboxMessage, PostgresEventStore, RecordedEvent
from eventkit.testing import free_port, wait_for
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration

Record: TypeAlias = ConsumerRecord[bytes, bytes]
NewTopic: TypeAlias = Callable[..., Awaitable[str]]
ReadTopic: TypeAlias = Callable[..., Awaitable[list[Record]]]
ToMessages: TypeAlias = Callable[[Sequence[RecordedEvent], str], list[OutboxMessage]]
Producers: TypeAlias = Callable[..., Callable[[], AIOKafkaProducer]]

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def ce_id(record: Record) -> str:
    return str(dict(record.headers)["ce_id"].decode())


def decode(record: Record) -> CloudEvent:
    """What any CloudEvents consumer sees: the official SDK's binary-mode decoding."""
    event = from_binary_event(
        KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value or b"")
    )
    assert isinstance(event, CloudEvent)
    return event


def metric(name: str, service: str) -> float:
    return REGISTRY.get_sample_value(name, {"service": service}) or 0.0


async def pending(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    return count


async def write(
    store: PostgresEventStore,
    to_messages: ToMessages,
    topic: str,
    streams: Sequence[str],
    per_stream: int,
) -> dict[str, RecordedEvent]:
    """Append `per_stream` events to each stream, interleaved, each with its outbox row."""
    written: dict[str, RecordedEvent] = {}
    versions = dict.fromkeys(streams, 0)
    base = datetime(2024, 5, 1, tzinfo=UTC)
    for n in range(per_stream):
        for sid in streams:
            new = NewEvent(
                type="CaseReceived",
                data={"n": n, "摘要": f"第{n}次来电：噪音扰民"},
                occurred_at=base + timedelta(minutes=n),
                bureau="城关派出所",
                metadata={
                    "correlation_id": f"corr-{sid}",
                    "causation_id": f"cmd-{sid}-{n}",
                    "traceparent": TRACEPARENT,
                },
            )
            async with store.transaction() as tx:
                recorded = await tx.append(sid, "case", versions[sid], [new])
                await tx.enqueue(to_messages(recorded, topic))
            versions[sid] += 1
            written[new.event_id] = recorded[0]
    return written


def first_versions_per_key(records: Sequence[Record]) -> dict[bytes, list[int]]:
    """streamversion of each message's first appearance, per key, in partition order."""
    seen: set[str] = set()
    firsts: dict[bytes, list[int]] = defaultdict(list)
    for record in records:
        if (eid := ce_id(record)) not in seen:
            seen.add(eid)
            assert record.key is not None
            firsts[record.key].append(int(dict(record.headers)["ce_streamversion"]))
    return firsts


async def test_relay_publishes_binary_cloudevents_keyed_and_ordered_by_aggregate(
    pool: asyncpg.Pool,
    pg_store: PostgresEventStore,
    kafka_bootstrap: str,
    new_topic: NewTopic,
    read_topic: ReadTopic,
    to_messages: ToMessages,
    producers: Producers,
) -> None:
    topic = await new_topic("relay-ce", partitions=3)
    streams = [f"case-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    written = await write(pg_store, to_messages, topic, streams, per_stream=4)
    service = f"relay-ce-{uuid.uuid4().hex[:6]}"
    relay = OutboxRelay(pool, producers(), service=service)

    assert await relay.drain() == 12
    records = await read_topic(topic, until=lambda rs: len(rs) >= 12)

    assert len(records) == 12
    for record in records:
        event = decode(record)
        stored = written[event.get_id()]
        assert record.key == stored.stream_id.encode()
        assert event.get_source() == "/jingmin/eventkit-tests"
        assert event.get_type() == "jingmin.test.CaseReceived"
        assert event.get_subject() == stored.stream_id
        assert event.get_time() == stored.occurred_at
        assert event.get_datacontenttype() == "application/json"
        assert event.get_data() == stored.data
        assert event.get_extension("bureau") == "城关派出所"
        assert event.get_extension("streamid") == stored.stream_id
        assert event.get_extension("streamversion") == str(stored.version)
        assert event.get_extension("correlationid") == f"corr-{stored.stream_id}"
        assert event.get_extension("causationid") == f"cmd-{stored.stream_id}-{stored.version - 1}"
        assert event.get_extension("traceparent") == TRACEPARENT
    assert {decode(r).get_id() for r in records} == set(written)
    # One aggregate, one partition, in version order.
    assert first_versions_per_key(records) == {s.encode(): [1, 2, 3, 4] for s in streams}
    assert len({(r.key, r.partition) for r in records}) == 3

    rows = await pool.fetch("SELECT published_at, attempts, last_error FROM outbox")
    assert all(
        r["published_at"] is not None and r["attempts"] == 1 and r["last_error"] is None
        for r in rows
    )
    assert relay.stats.published == 12 and relay.stats.failures == 0
    assert metric("jingmin_outbox_published_total", service) == 12
    assert await relay.drain() == 0  # nothing is sent twice once marked


async def test_relay_keeps_retrying_until_the_broker_is_reachable(
    pool: asyncpg.Pool,
    pg_store: PostgresEventStore,
    kafka_bootstrap: str,
    new_topic: NewTopic,
    read_topic: ReadTopic,
    to_messages: ToMessages,
    producers: Producers,
) -> None:
    topic = await new_topic("relay-outage", partitions=2)
    written = await write(pg_store, to_messages, topic, ["case-1", "case-2"], per_stream=5)
    target = {"bootstrap": f"127.0.0.1:{free_port()}"}  # nothing listens there
    relay = OutboxRelay(
        pool,
        producers(lambda: target["bootstrap"]),
        service=f"relay-outage-{uuid.uuid4().hex[:6]}",
        poll_interval=0.05,
        max_backoff=0.3,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        # Several attempts against the dead address, each recorded on the rows.
        await wait_for(lambda: relay.stats.failures >= 3, timeout=30)
        assert await pending(pool) == 10
        target["bootstrap"] = kafka_bootstrap  # the broker comes back
        await wait_for(lambda: _zero(pool), timeout=30)
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
    records = await read_topic(topic, until=lambda rs: {ce_id(r) for r in rs} >= set(written))
    assert {ce_id(r) for r in records} == set(written)
    assert first_versions_per_key(records) == {
        b"case-1": [1, 2, 3, 4, 5],
        b"case-2": [1, 2, 3, 4, 5],
    }


async def _zero(pool: asyncpg.Pool) -> bool:
    return await pending(pool) == 0


async def test_an_unreachable_broker_is_counted_and_recorded_on_the_rows(
    pool: asyncpg.Pool,
    pg_store: PostgresEventStore,
    kafka_bootstrap: str,
    new_topic: NewTopic,
    to_messages: ToMessages,
    producers: Producers,
) -> None:
    topic = await new_topic("relay-dead", partitions=1)
    await write(pg_store, to_messages, topic, ["case-1"], per_stream=3)
    service = f"relay-dead-{uuid.uuid4().hex[:6]}"
    relay = OutboxRelay(pool, producers(f"127.0.0.1:{free_port()}"), service=service)

    for _ in range(2):
        with pytest.raises(Exception, match=r"(?i)connect"):
            await relay.publish_batch()

    assert relay.stats.failures == 2
    assert metric("jingmin_outbox_failures_total", service) == 2
    rows = await pool.fetch("SELECT attempts, last_error, published_at FROM outbox")
    assert [r["attempts"] for r in rows] == [2, 2, 2]
    assert all("Connection" in (r["last_error"] or "") for r in rows)
    assert all(r["published_at"] is None for r in rows)


async def test_two_relays_on_one_database_one_leads_and_the_other_takes_over(
    dsn: str,
    pool: asyncpg.Pool,
    pg_store: PostgresEventStore,
    kafka_bootstrap: str,
    new_topic: NewTopic,
    read_topic: ReadTopic,
    to_messages: ToMessages,
    producers: Producers,
) -> None:
    topic = await new_topic("relay-lead", partitions=2)
    pools = [await db.create_pool(dsn, min_size=1, max_size=4) for _ in range(2)]
    relays = [
        OutboxRelay(p, producers(), service=f"lead-{i}", poll_interval=0.05)
        for i, p in enumerate(pools)
    ]
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(r.run(s)) for r, s in zip(relays, stops, strict=True)]
    try:
        first = await write(pg_store, to_messages, topic, ["case-1", "case-2"], per_stream=10)
        await wait_for(lambda: _zero(pool), timeout=30)
        leader = 0 if relays[0].stats.published else 1
        standby = 1 - leader
        assert relays[leader].stats.published == 20
        assert relays[standby].stats.published == 0  # it only stood by

        # The leader stops between two writes: what it left pending, the standby sends.
        second = await write(pg_store, to_messages, topic, ["case-3"], per_stream=10)
        stops[leader].set()
        await asyncio.wait_for(tasks[leader], 15)
        second |= await write(pg_store, to_messages, topic, ["case-4"], per_stream=10)
        await wait_for(lambda: _zero(pool), timeout=30)
        assert relays[standby].stats.published >= 10
        assert relays[leader].stats.published + relays[standby].stats.published >= 40
    finally:
        for stop in stops:
            stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)
        for p in pools:
            await p.close()

    expected = set(first) | set(second)
    records = await read_topic(topic, until=lambda rs: {ce_id(r) for r in rs} >= expected)
    assert {ce_id(r) for r in records} == expected
    assert first_versions_per_key(records) == {
        f"case-{i}".encode(): list(range(1, 11)) for i in range(1, 5)
    }


RUNNER = """
import asyncio, sys
from eventkit import db, kafka
from eventkit.relay import OutboxRelay
from eventkit.settings import KernelSettings

async def main(dsn, bootstrap, batch):
    pool = await db.create_pool(dsn, min_size=1, max_size=4)
    relay = OutboxRelay(pool, lambda: kafka.producer(KernelSettings(), bootstrap),
                        service="kill9", batch_size=batch, poll_interval=0.05)
    await relay.run()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def seed_outbox(
    pool: asyncpg.Pool, to_messages: ToMessages, topic: str, aggregates: int, per_aggregate: int
) -> dict[str, tuple[str, int]]:
    """Store aggregates x per_aggregate events; outbox rows interleave the aggregates."""
    store = PostgresEventStore(pool)
    streams = [f"case-{i:03d}-{uuid.uuid4().hex[:6]}" for i in range(aggregates)]
    written: dict[str, tuple[str, int]] = {}
    chunk = 5
    base = datetime(2024, 5, 1, tzinfo=UTC)
    for start in range(0, per_aggregate, chunk):
        async with store.transaction() as tx:
            recorded: list[list[RecordedEvent]] = []
            for sid in streams:
                events = [
                    NewEvent(
                        type="CaseReceived",
                        data={"n": v, "备注": "压力测试"},
                        occurred_at=base + timedelta(seconds=v),
                        bureau="b",
                    )
                    for v in range(start, start + chunk)
                ]
                recorded.append(await tx.append(sid, "case", start, events))
            # Round-robin, so every batch the relay reads mixes many aggregates.
            for i in range(chunk):
                await tx.enqueue(to_messages([r[i] for r in recorded], topic))
            for r in recorded:
                written.update((e.event_id, (e.stream_id, e.version)) for e in r)
    return written


async def test_relay_killed_with_sigkill_three_times_loses_nothing_and_keeps_order(
    dsn: str,
    pool: asyncpg.Pool,
    kafka_bootstrap: str,
    new_topic: NewTopic,
    read_topic: ReadTopic,
    to_messages: ToMessages,
    tmp_path: Path,
) -> None:
    topic = await new_topic("relay-kill9", partitions=6)
    written = await seed_outbox(pool, to_messages, topic, aggregates=200, per_aggregate=50)
    assert len(written) == 10_000
    rng = random.Random()
    log = (tmp_path / "relay.log").open("ab")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", RUNNER, dsn, kafka_bootstrap, "100"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    async def published() -> int:
        count: int = await pool.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL"
        )
        return count

    procs: list[subprocess.Popen[bytes]] = []
    kills: list[dict[str, Any]] = []
    try:
        for _ in range(3):
            before = await published()
            proc = start()
            procs.append(proc)

            async def progressing(before: int = before) -> bool:
                return await published() > before

            await wait_for(progressing, timeout=30, message="the relay never published")
            await asyncio.sleep(rng.uniform(0.0, 0.25))
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 10)
            kills.append({"published": await published(), "rc": proc.returncode})
            assert proc.returncode == -signal.SIGKILL
        # Each kill happened mid-stream, with rows still pending.
        assert all(k["published"] < 10_000 for k in kills), kills

        procs.append(start())
        await wait_for(lambda: _zero(pool), timeout=90, message="outbox never drained")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                await asyncio.to_thread(proc.wait, 10)
        log.close()

    records = await read_topic(
        topic, until=lambda rs: {ce_id(r) for r in rs} >= set(written), timeout=60
    )
    ids = Counter(ce_id(r) for r in records)
    assert set(ids) == set(written), f"{len(set(written) - set(ids))} messages lost"
    assert await pending(pool) == 0
    firsts = first_versions_per_key(records)
    assert len(firsts) == 200
    for key, versions in firsts.items():
        assert versions == list(range(1, 51)), key
    for record in records:
        sid, _ = written[ce_id(record)]
        assert record.key == sid.encode()
    duplicates = sum(ids.values()) - len(ids)
    print(f"kill -9 at {[k['published'] for k in kills]} published; {duplicates} duplicates")


async def test_the_relay_stands_again_after_its_database_session_dies(
    dsn: str,
    pool: asyncpg.Pool,
    pg_store: PostgresEventStore,
    new_topic: NewTopic,
    read_topic: ReadTopic,
    to_messages: ToMessages,
    producers: Producers,
) -> None:
    # What a PostgreSQL restart does to the relay: every session, and the leadership lock
    # held by one of them, is gone. The relay must re-elect itself, not die or run unlocked.
    topic = await new_topic("relay-restart", partitions=2)
    relay_pool = await db.create_pool(dsn, min_size=1, max_size=4)
    relay = OutboxRelay(relay_pool, producers(), service="restart", poll_interval=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        first = await write(pg_store, to_messages, topic, ["case-1"], per_stream=5)
        await wait_for(lambda: _zero(pool), timeout=30)
        killed = await pool.fetchval(
            """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid()
                 AND backend_type = 'client backend'
                 AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')"""
        )
        assert killed == 1
        second = await write(pg_store, to_messages, topic, ["case-2"], per_stream=5)
        await wait_for(lambda: _zero(pool), timeout=30)
        assert not task.done()
        # It holds the lock again (in this database: pg_locks lists the whole server's, and
        # another stack's relays may share the server).
        await wait_for(
            lambda: pool.fetchval(
                """SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                   AND database = (SELECT oid FROM pg_database
                                   WHERE datname = current_database())"""
            ),
            timeout=15,
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await relay_pool.close()
    expected = set(first) | set(second)
    records = await read_topic(topic, until=lambda rs: {ce_id(r) for r in rs} >= expected)
    assert {ce_id(r) for r in records} >= expected
