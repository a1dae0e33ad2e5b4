"""PostgreSQL store under concurrency: one winner per version, and readers and the relay
never skip an event whose transaction commits after a later one."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeAlias

import asyncpg
import pytest
from aiokafka import ConsumerRecord
from eventkit import kafka
from eventkit.relay import OutboxRelay
from eventkit.settings import KernelSettings
from eventkit.store import (
    START,
    ConcurrencyConflict,
    NewEvent,
    OutboxMessage,
    PostgresEventStore,
    PostgresTransaction,
    RecordedEvent,
)
from eventkit.testing import wait_for

pytestmark = pytest.mark.integration

MakeEvent: TypeAlias = Callable[..., NewEvent]
NewTopic: TypeAlias = Callable[..., Awaitable[str]]
ReadTopic: TypeAlias = Callable[..., Awaitable[list[ConsumerRecord[bytes, bytes]]]]
ToMessages: TypeAlias = Callable[[Sequence[RecordedEvent], str], list[OutboxMessage]]


def ce_id(record: ConsumerRecord[bytes, bytes]) -> str:
    return str(dict(record.headers)["ce_id"].decode())


async def test_sixteen_racing_writers_get_exactly_one_winner_per_version(
    pg_store: PostgresEventStore, new_event: MakeEvent
) -> None:
    sid = f"case-{uuid.uuid4().hex[:8]}"
    writers = 16
    winners: list[tuple[int, str]] = []  # (version written, event id)
    conflicts = Counter[int]()
    other_errors: list[BaseException] = []

    async def writer(barrier: asyncio.Barrier) -> None:
        current = len(await pg_store.load(sid))
        await barrier.wait()  # all 16 read the same version before any of them writes
        new = new_event(current + 1)
        try:
            await pg_store.append(sid, "case", current, [new])
            winners.append((current + 1, new.event_id))
        except ConcurrencyConflict:
            conflicts[current + 1] += 1
        except BaseException as exc:  # anything else is a failure of the store
            other_errors.append(exc)

    rounds = 0
    while len(winners) < 50:
        barrier = asyncio.Barrier(writers)
        await asyncio.gather(*(writer(barrier) for _ in range(writers)))
        rounds += 1
        assert rounds <= 50, "a round produced no winner"

    assert other_errors == []
    assert rounds == 50
    assert Counter(v for v, _ in winners) == Counter(range(1, 51))  # one winner per version
    assert conflicts == Counter(dict.fromkeys(range(1, 51), writers - 1))
    loaded = await pg_store.load(sid)
    assert [e.version for e in loaded] == list(range(1, 51))
    assert [e.event_id for e in loaded] == [eid for _, eid in sorted(winners)]


async def test_reader_does_not_skip_an_event_committed_after_a_later_one(
    pool: asyncpg.Pool, pg_store: PostgresEventStore, new_event: MakeEvent
) -> None:
    a, b = new_event(1), new_event(2)
    async with pool.acquire() as conn:
        t1 = conn.transaction()
        await t1.start()
        # T1 writes first (smaller transaction id and global position) but commits last.
        await PostgresTransaction(conn).append("case-A", "case", 0, [a])
        await pg_store.append("case-B", "case", 0, [b])  # T2 commits while T1 is open

        seen = await pg_store.read_all()
        # B is committed but hidden: returning it now would move the reader past A's slot.
        assert [e.event_id for e in seen] == []
        last = seen[-1].position if seen else START

        await t1.commit()

    async def caught_up() -> list[RecordedEvent] | None:
        events = await pg_store.read_all(after=last)
        return events if len(events) == 2 else None

    after = await wait_for(caught_up, timeout=20)
    assert [e.event_id for e in after] == [a.event_id, b.event_id]


async def test_reader_polling_through_200_held_open_writers_sees_each_event_once(
    pool: asyncpg.Pool, pg_store: PostgresEventStore, new_event: MakeEvent
) -> None:
    rng = random.Random(7)
    committed: set[str] = set()
    rolled_back: set[str] = set()
    writers_done = asyncio.Event()

    async def writer(i: int) -> None:
        await asyncio.sleep(rng.uniform(0, 1.0))
        sid = f"case-{i % 25}"
        while True:
            events = [new_event(i) for _ in range(rng.choice([1, 1, 2, 3]))]
            try:
                async with pg_store.transaction() as tx:
                    version = len(await tx.load(sid))
                    await tx.append(sid, "case", version, events)
                    await asyncio.sleep(rng.uniform(0, 0.05))  # held open, others commit
                    if i % 10 == 3:
                        rolled_back.update(e.event_id for e in events)
                        raise _Rollback
            except ConcurrencyConflict:
                continue
            except _Rollback:
                return
            committed.update(e.event_id for e in events)
            return

    seen: list[RecordedEvent] = []

    async def reader() -> None:
        position = START
        loop = asyncio.get_running_loop()
        deadline = float("inf")
        while loop.time() < deadline:
            page = await pg_store.read_all(after=position, limit=37)
            seen.extend(page)
            if page:
                position = page[-1].position
                continue
            if writers_done.is_set():
                if {e.event_id for e in seen} >= committed:
                    return
                # Give writers elsewhere on the server time to finish, then report the gap.
                deadline = min(deadline, loop.time() + 15)
            await asyncio.sleep(0.005)

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(i) for i in range(200)))
    writers_done.set()
    await reading

    ids = [e.event_id for e in seen]
    assert len(ids) == len(set(ids)), "an event was read twice"
    assert set(ids) == committed
    assert not rolled_back & set(ids)
    assert len(committed) > 180  # every committing writer wrote at least one event
    # Each stream's events come out in version order, without gaps.
    by_stream: dict[str, list[int]] = defaultdict(list)
    for e in seen:
        by_stream[e.stream_id].append(e.version)
    for versions in by_stream.values():
        assert versions == list(range(1, len(versions) + 1))


class _Rollback(Exception):
    pass


async def test_relay_publishes_every_row_while_transactions_are_held_open(
    pool: asyncpg.Pool,
    pg_store: PostgresEventStore,
    new_event: MakeEvent,
    kafka_bootstrap: str,
    new_topic: NewTopic,
    read_topic: ReadTopic,
    to_messages: ToMessages,
) -> None:
    topic = await new_topic("held-open", partitions=4)
    rng = random.Random(11)
    committed: dict[str, tuple[str, int]] = {}  # event id -> (stream, version)
    relay = OutboxRelay(
        pool,
        lambda: kafka.producer(KernelSettings(), kafka_bootstrap),
        service=f"held-{uuid.uuid4().hex[:6]}",
        batch_size=20,
        poll_interval=0.02,
    )
    stop = asyncio.Event()
    relaying = asyncio.create_task(relay.run(stop))

    async def writer(i: int) -> None:
        await asyncio.sleep(rng.uniform(0, 1.0))
        sid = f"case-{i % 20}"
        while True:
            try:
                async with pg_store.transaction() as tx:
                    version = len(await tx.load(sid))
                    recorded = await tx.append(sid, "case", version, [new_event(i)])
                    await tx.enqueue(to_messages(recorded, topic))
                    await asyncio.sleep(rng.uniform(0, 0.05))
                    if i % 10 == 3:
                        raise _Rollback
            except ConcurrencyConflict:
                continue
            except _Rollback:
                return
            committed[recorded[0].event_id] = (sid, recorded[0].version)
            return

    try:
        await asyncio.gather(*(writer(i) for i in range(200)))
        await wait_for(
            lambda: pool.fetchval("SELECT count(*) = 0 FROM outbox WHERE published_at IS NULL"),
            timeout=30,
        )
    finally:
        stop.set()
        await asyncio.wait_for(relaying, 15)

    records = await read_topic(topic, until=lambda rs: {ce_id(r) for r in rs} >= set(committed))
    published = [ce_id(r) for r in records]
    assert set(published) == set(committed)
    assert await pool.fetchval("SELECT count(*) FROM outbox") == len(committed) == 180
    # Per aggregate, first occurrences come out in version order.
    firsts: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for record, event_id in zip(records, published, strict=True):
        if event_id not in seen:
            seen.add(event_id)
            sid, version = committed[event_id]
            assert record.key == sid.encode()
            firsts[sid].append(version)
    for versions in firsts.values():
        assert versions == list(range(1, len(versions) + 1))


async def test_read_all_keeps_stream_order_when_the_next_writer_started_writing_earlier(
    pool: asyncpg.Pool, pg_store: PostgresEventStore, new_event: MakeEvent
) -> None:
    # The shape of every idempotent consumer whose handler appends: it records the
    # processed message (taking a transaction id), then loads the stream and appends; on
    # ConcurrencyConflict it retries in a new transaction, as IdempotentConsumer does.
    first, second = new_event(1), new_event(2)
    for attempt in range(3):
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO processed_messages (consumer, message_id) VALUES ('policy', 'm-1')"
                )
                if attempt == 0:
                    await pg_store.append("case-1", "case", 0, [first])  # another request
                tx = PostgresTransaction(conn)
                version = len(await tx.load("case-1"))
                await tx.append("case-1", "case", version, [second])
            break
        except ConcurrencyConflict:
            continue

    async def both() -> list[RecordedEvent] | None:
        events = await pg_store.read_all()
        return events if len(events) == 2 else None

    events = await wait_for(both, timeout=20)
    assert [(e.event_id, e.version) for e in events] == [(first.event_id, 1), (second.event_id, 2)]
