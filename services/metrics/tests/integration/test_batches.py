"""Batches as the Kafka client hands them over, into the metrics database: exact figures.

No faust here: real records from a real broker (Tansu), fed to `SourceGroup` the way the
faust agents feed it, with the seeks it answers made on a real aiokafka consumer. Every
scenario's figures (read back from the database) must equal those of one processor that
read everything once. Records go to chosen partitions, so nothing depends on key hashing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from eventkit import topics
from eventkit.service import TopicSpec
from eventkit.testing import DatabaseFactory
from jingmin_metrics.adapters.state_store import (
    ITEMS,
    PartitionWrite,
    Position,
    Refused,
    StateStore,
)
from jingmin_metrics.domain.facts import callback_root
from jingmin_metrics.figures.snapshot import Merged, SnapshotView
from jingmin_metrics.service import SERVICE
from jingmin_metrics.stream.batches import Record, SourceGroup
from jingmin_metrics.stream.processor import Processor
from jingmin_metrics.stream.records import item_fact
from support import case_events

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
PARTITIONS = 4
CASES = 16


@dataclass
class Source:
    bootstrap: str
    intake: str
    regrouped: str
    counts: dict[tuple[str, int], int]

    def tps(self) -> list[tuple[str, int]]:
        return [(t, p) for t in (self.intake, self.regrouped) for p in range(PARTITIONS)]


@pytest.fixture(scope="module")
async def source(metrics_broker: str) -> Source:
    """Intake events of 16 cases, and their callbacks keyed by case (as the regroup agent
    writes them), case i on partition i mod 4."""
    run = uuid.uuid4().hex[:8]
    src = Source(metrics_broker, f"batches-intake-{run}", f"batches-regrouped-{run}", {})
    await topics.ensure_topics(
        metrics_broker, [TopicSpec(t, partitions=PARTITIONS) for t in (src.intake, src.regrouped)]
    )
    producer = AIOKafkaProducer(bootstrap_servers=metrics_broker, acks="all")
    await producer.start()
    try:
        for i in range(CASES):
            for e in case_events(T0 + timedelta(hours=i)):
                assert e.streamid is not None
                if e.type.split(".")[1] == "intake":
                    topic, key = src.intake, e.streamid
                else:
                    topic, key = src.regrouped, callback_root(e.streamid, e.data)
                tp = (topic, i % PARTITIONS)
                await producer.send_and_wait(
                    topic,
                    e.kafka_value(),
                    key=key.encode(),
                    headers=e.kafka_headers(),
                    partition=tp[1],
                )
                src.counts[tp] = src.counts.get(tp, 0) + 1
    finally:
        await producer.stop()
    return src


class Proc:
    """One processor: a Kafka client with manually assigned partitions, and its state."""

    def __init__(self, src: Source, pool: asyncpg.Pool) -> None:
        self.src = src
        self.processor = Processor()
        self.group = SourceGroup(
            StateStore(pool), ITEMS, [src.intake, src.regrouped], self.processor
        )
        self.consumer: AIOKafkaConsumer | None = None

    async def apply(self, partition: int, records: Sequence[Record]) -> None:
        for record in records:
            found = item_fact(record, self.src.regrouped)
            if found is not None:
                self.processor.apply(
                    partition, found.key, found.stream_id, found.version, found.fact
                )

    async def batch(self, records: Sequence[Any]) -> dict[tuple[str, int], int]:
        return await self.group.batch(records, self.apply)

    async def assign(self, partitions: Sequence[int]) -> None:
        """What a rebalance does: the new assignment, each partition sought where stored."""
        tps = [(t, p) for t in (self.src.intake, self.src.regrouped) for p in partitions]
        seeks = await self.group.adopt(tps)
        if self.consumer is None:
            self.consumer = AIOKafkaConsumer(
                bootstrap_servers=self.src.bootstrap, enable_auto_commit=False
            )
            await self.consumer.start()
        self.consumer.assign([TopicPartition(t, p) for t, p in tps])
        self._seek(seeks)

    def _seek(self, seeks: dict[tuple[str, int], int]) -> None:
        assert self.consumer is not None
        for (topic, partition), offset in seeks.items():
            self.consumer.seek(TopicPartition(topic, partition), offset)

    async def poll(self, max_records: int = 7) -> int:
        """One batch from the client (small ones, so batches cut through cases)."""
        assert self.consumer is not None
        got = await self.consumer.getmany(timeout_ms=200, max_records=max_records)
        records = [r for rs in got.values() for r in rs]
        self._seek(await self.batch(records))
        return len(records)

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()


async def read_all(src: Source) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=src.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t, p in src.tps()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        while len(out) < sum(src.counts.values()):
            got = await consumer.getmany(timeout_ms=500)
            out += [r for rs in got.values() for r in rs]
        return out
    finally:
        await consumer.stop()


@asynccontextmanager
async def database(fresh_database: DatabaseFactory) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(
        await fresh_database([SERVICE.migrations]), min_size=1, max_size=6
    )
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


async def figures(pool: asyncpg.Pool) -> tuple[Merged, int]:
    view = SnapshotView()
    for key, value in await StateStore(pool).figures():
        view.accept(key, value)
    return view.merged(), view.facts()


async def positions(pool: asyncpg.Pool) -> dict[tuple[str, int], int]:
    rows = await pool.fetch("SELECT topic, partition, next_offset FROM metrics_positions")
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


@pytest.fixture
async def reference(source: Source, fresh_database: DatabaseFactory) -> tuple[Merged, int]:
    """One processor, every partition, every record once."""
    async with database(fresh_database) as pool:
        one = Proc(source, pool)
        await one.group.adopt(source.tps())
        await one.batch(await read_all(source))
        merged, facts = await figures(pool)
        assert await positions(pool) == source.counts
    assert facts == CASES * 8 and merged
    return merged, facts


@asynccontextmanager
async def one_processor(
    source: Source, fresh_database: DatabaseFactory
) -> AsyncIterator[tuple[asyncpg.Pool, Proc, list[Any]]]:
    """A fresh database, a processor owning every partition (all at offset 0), the records."""
    records = await read_all(source)
    async with database(fresh_database) as pool:
        proc = Proc(source, pool)
        assert await proc.group.adopt(source.tps()) == dict.fromkeys(source.tps(), 0)
        yield pool, proc, records


def _of(records: list[Any], tp: tuple[str, int]) -> list[Any]:
    return sorted((r for r in records if (r.topic, r.partition) == tp), key=lambda r: r.offset)


async def test_a_batch_past_the_stored_offset_is_dropped_and_the_partition_sought_back(
    source: Source, fresh_database: DatabaseFactory, reference: tuple[Merged, int]
) -> None:
    async with one_processor(source, fresh_database) as (pool, proc, records):
        tp = (source.intake, 1)
        ahead = _of(records, tp)[3:]
        # The client skipped offsets 0 to 2: nothing is applied, and it must read from 0.
        assert await proc.batch(ahead) == {tp: 0}
        assert (await positions(pool))[tp] == 0
        # A batch with a hole: applied up to it, then read again from there.
        run = _of(records, tp)
        assert await proc.batch(run[:4] + run[6:]) == {tp: 4}
        assert (await positions(pool))[tp] == 4
        assert await proc.batch(run[4:]) == {}
        assert await proc.batch([r for r in records if (r.topic, r.partition) != tp]) == {}
        assert await figures(pool) == reference
        assert await positions(pool) == source.counts


async def test_an_old_batch_delivered_again_changes_nothing(
    source: Source, fresh_database: DatabaseFactory, reference: tuple[Merged, int]
) -> None:
    async with one_processor(source, fresh_database) as (pool, proc, records):
        await proc.batch(records)
        before = await positions(pool)
        # The first records again (a redelivery after a rebalance): dropped, and each
        # partition sought to where the database says it is.
        again = [r for r in records if r.offset < 3]
        assert await proc.batch(again) == {
            tp: source.counts[tp] for tp in {(r.topic, r.partition) for r in again}
        }
        assert await positions(pool) == before
        # Its lag is what the database holds against the logs' ends.
        ends: dict[tuple[str, int], int | None] = dict(source.counts)
        assert proc.group.lag(ends) == 0
        assert (
            proc.group.lag({**ends, (source.intake, 0): source.counts[(source.intake, 0)] + 5}) == 5
        )
        # A new processor over the same database resumes exactly where the first stopped,
        # after checking that the record before that offset is the one it read.
        later = Proc(source, pool)
        seeks = await later.group.adopt(source.tps())
        assert seeks == {tp: n - 1 for tp, n in source.counts.items()}
        last = [_of(records, tp)[-1] for tp in source.tps()]
        assert await later.batch(last) == {}
        assert await figures(pool) == reference


@pytest.mark.parametrize("steps", [(2, 4)], ids=["two-then-four"])
async def test_processors_sharing_the_partitions_give_the_figures_of_one(
    source: Source,
    fresh_database: DatabaseFactory,
    reference: tuple[Merged, int],
    steps: tuple[int, int],
) -> None:
    async with database(fresh_database) as pool:
        procs: list[Proc] = []
        try:
            for n in steps:
                procs += [Proc(source, pool) for _ in range(n - len(procs))]
                # Each rebalance gives partition p to processor p mod n.
                for i, proc in enumerate(procs):
                    await proc.assign([p for p in range(PARTITIONS) if p % n == i])
                # Read a little (the first step) or everything (the last).
                rounds = 2 if n != steps[-1] else None
                done = 0
                while rounds is None or done < rounds:
                    got = [await proc.poll() for proc in procs]
                    done += 1
                    if rounds is None and not any(got) and await positions(pool) == source.counts:
                        break
            assert await figures(pool) == reference
            assert await positions(pool) == source.counts
        finally:
            for proc in procs:
                await proc.stop()


async def test_a_zombie_cannot_write_after_the_new_owner(
    source: Source, fresh_database: DatabaseFactory, reference: tuple[Merged, int]
) -> None:
    records = await read_all(source)
    async with database(fresh_database) as pool:
        zombie, owner = Proc(source, pool), Proc(source, pool)
        await zombie.group.adopt(source.tps())
        part0 = [r for r in records if r.partition == 0]

        async def paused_then_late(partition: int, batch: Sequence[Record]) -> None:
            # The zombie has applied the batch in memory when it stops; meanwhile the group
            # gives its partitions to another processor, which reads everything.
            await zombie.apply(partition, batch)
            await owner.group.adopt(source.tps())
            await owner.batch(records)

        # Its late commit is refused whole, and it lets the partition go.
        assert await zombie.group.batch(part0, paused_then_late) == {}
        assert 0 not in zombie.group.owned()
        assert await figures(pool) == reference
        assert await positions(pool) == source.counts

        # The compare-and-set alone also refuses a position that moved since it was read.
        store = StateStore(pool)
        generation = await store.claim(ITEMS, 0, [source.intake])
        stale = PartitionWrite(ITEMS, 0, generation, {source.intake: (Position(0), Position(1, 0))})
        with pytest.raises(Refused):
            await store.commit([stale])
        assert await figures(pool) == reference


async def test_a_batch_that_fails_midway_is_read_again_from_what_is_stored(
    source: Source, fresh_database: DatabaseFactory, reference: tuple[Merged, int]
) -> None:
    async with one_processor(source, fresh_database) as (pool, proc, records):
        half = [r for r in records if r.offset < 5]
        await proc.batch(half)
        calls = 0

        async def fails_after_applying(partition: int, batch: Sequence[Record]) -> None:
            # Applied in memory, then the broker or the database goes away.
            nonlocal calls
            calls += 1
            await proc.apply(partition, batch)
            if calls == 2:
                raise ConnectionError("the database went away")

        rest = [r for r in records if r.offset >= 5]
        with pytest.raises(ConnectionError):
            await proc.group.batch(rest, fails_after_applying)
        # The next batch first reloads those partitions and seeks them where stored; the
        # records are then read again.
        seeks = await proc.batch(rest)
        assert seeks == dict.fromkeys(source.tps(), 4)
        # From the record before the stored offset (checked against its digest) on.
        assert await proc.batch([r for r in records if r.offset >= 4]) == {}
        assert await figures(pool) == reference
        assert await positions(pool) == source.counts


async def test_a_processor_given_back_partitions_it_held_before_reloads_them(
    source: Source, fresh_database: DatabaseFactory, reference: tuple[Merged, int]
) -> None:
    # A processor paused (a zombie) while another owned its partitions gets them back when
    # it rejoins: what it holds in memory misses what the other applied meanwhile.
    async with one_processor(source, fresh_database) as (pool, first, records):
        await first.batch([r for r in records if r.offset < 3])
        other = Proc(source, pool)
        await other.group.adopt(source.tps())
        await other.batch([r for r in records if r.offset >= 2 and r.offset < 6])
        seeks = await first.group.adopt(source.tps())
        assert seeks == dict.fromkeys(source.tps(), 5)
        await first.batch([r for r in records if r.offset >= 5])
        assert await figures(pool) == reference
        assert await positions(pool) == source.counts


async def test_a_regrouped_topic_made_again_makes_the_regroup_role_read_from_the_start(
    source: Source, fresh_database: DatabaseFactory, reference: tuple[Merged, int]
) -> None:
    # A broker lost and refilled: the callbacks come back by replay, but what the regroup
    # role had written to the regrouped topic (and the items role not yet read) is gone.
    from jingmin_metrics.adapters.state_store import REGROUP

    callbacks = "batches-callbacks"
    async with one_processor(source, fresh_database) as (pool, proc, records):
        proc.group.feeders = {source.regrouped: (REGROUP, frozenset([callbacks]))}
        await proc.batch(records)
        store = StateStore(pool)
        regroup = SourceGroup(store, REGROUP, [callbacks], reclaim_when_refused=True)
        await regroup.adopt([(callbacks, 0)])
        await pool.execute(
            "UPDATE metrics_positions SET next_offset = 40, last_digest = 1 WHERE topic = $1",
            callbacks,
        )
        # The items role finds the regrouped log shorter than what it read.
        again = await proc.group.adopt(source.tps())
        tp = (source.regrouped, 0)
        assert proc.group.check(tp, again[tp], highwater=0) == 0
        await proc.group.restart_feeders()
        assert (await positions(pool))[(callbacks, 0)] == 0
        # The regroup role notices its claim moved on and reads the callbacks from 0.
        assert await regroup.revalidate() == {(callbacks, 0): 0}
        assert await figures(pool) == reference
