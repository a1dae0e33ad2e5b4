"""Batches from the Kafka client to the metrics database, exactly once in effect.

Free of faust: the app hands each batch of records (faust messages or aiokafka records, the
same attributes) to a `SourceGroup` and performs the seeks it answers with, through the
client's public seek. Per source partition the database holds the next offset to read; a
batch is applied only from exactly that offset and only as far as its offsets run
contiguously (the source topics are neither compacted nor transactional), and the new
position commits with the batch's effects in one transaction, as a compare-and-set on the
old one. Anything else is dropped and the partition sought back to where the database says.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from jingmin_metrics.adapters.state_store import (
    ITEMS,
    PartitionWrite,
    Position,
    Refused,
    StateStore,
)
from jingmin_metrics.stream.processor import Processor
from jingmin_metrics.stream.telemetry import REFUSED

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


class Record(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> Any: ...
    @property
    def value(self) -> Any: ...


def digest(record: Record) -> int:
    """A fingerprint of a record, to recognise the log it came from."""
    key = record.key if isinstance(record.key, bytes) else b""
    value = record.value if isinstance(record.value, bytes) else b""
    return zlib.crc32(value, zlib.crc32(key))


@dataclass
class Cursor:
    """Where a source partition's next batch must start, and what the database holds."""

    stored: Position
    # The offset the next batch must start at: the stored one, or the one before it while
    # the record there has not been checked against the stored digest yet.
    start: int
    checked: bool


def cursor(position: Position) -> Cursor:
    if position.offset == 0 or position.digest is None:
        return Cursor(position, position.offset, True)
    return Cursor(position, position.offset - 1, False)


Apply = Callable[[int, Sequence[Record]], Awaitable[None]]


class SourceGroup:
    """The source partitions one role (items or regroup) of one processor owns."""

    def __init__(
        self,
        store: StateStore,
        role: str,
        topics: Iterable[str],
        processor: Processor | None = None,
        *,
        feeders: dict[str, tuple[str, frozenset[str]]] | None = None,
        reclaim_when_refused: bool = False,
    ) -> None:
        """`feeders`: per topic this role reads, the role and topics that write it (the
        regroup role writes the regrouped topic). When that topic was made again, what they
        had written is gone: they must read their own topics again from offset 0.
        `reclaim_when_refused`: a refused commit claims the partition again instead of
        letting it go (for a role whose writes are idempotent sends, keeping nothing)."""
        self.feeders = feeders or {}
        self.reclaim_when_refused = reclaim_when_refused
        self._restart: set[tuple[str, frozenset[str]]] = set()
        self.store = store
        self.role = role
        self.topics = frozenset(topics)
        self.processor = processor
        self.generations: dict[int, int] = {}
        self.cursors: dict[TopicPartition, Cursor] = {}
        self._stalled: dict[TopicPartition, int] = {}
        # Partitions whose memory may be ahead of the database (a batch failed midway).
        self._stale: set[int] = set()

    # -------------------------------------------------------------------- ownership

    async def adopt(self, assigned: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Own exactly the `assigned` partitions of this role's topics; where to seek each.

        Every assignment claims its partitions again (a new generation), and later writes
        of a previous owner are refused. A partition's memory is kept only if nobody claimed
        it since this processor did (the new generation is the next after its own): a
        processor that was paused while another owned the partition reloads it.
        """
        mine = {tp for tp in assigned if tp[0] in self.topics}
        partitions = {p for _t, p in mine}
        for partition in set(self.generations) - partitions:
            self._forget(partition)
        seeks: dict[TopicPartition, int] = {}
        for partition in sorted(partitions):
            keep = partition in self.generations and (
                self.processor is None or self.processor.owns(partition)
            )
            seeks.update(await self._claim(partition, load=not keep))
        return {tp: offset for tp, offset in seeks.items() if tp in mine}

    async def _claim(self, partition: int, load: bool) -> dict[TopicPartition, int]:
        before = self.generations.get(partition)
        generation = await self.store.claim(self.role, partition, self.topics)
        self.generations[partition] = generation
        if before is None or generation != before + 1:
            load = True  # another processor owned it in between: this memory is stale
        positions = await self.store.positions(partition, self.topics)
        if load and self.processor is not None:
            self.processor.load(partition, await self.store.items(partition))
        seeks = {}
        for topic, position in positions.items():
            c = cursor(position)
            self.cursors[(topic, partition)] = c
            seeks[(topic, partition)] = c.start
        return seeks

    def _forget(self, partition: int) -> None:
        self.generations.pop(partition, None)
        self._stale.discard(partition)
        for tp in [tp for tp in self.cursors if tp[1] == partition]:
            del self.cursors[tp]
        if self.processor is not None:
            self.processor.drop(partition)

    def _made_again(self, tp: TopicPartition) -> None:
        c = self.cursors[tp]
        c.start, c.checked = 0, True
        if tp[0] in self.feeders:
            self._restart.add(self.feeders[tp[0]])

    def lag(self, highwaters: dict[TopicPartition, int | None]) -> int:
        """Records behind the high-water marks, from the positions the database holds."""
        return sum(
            max(0, hw - self.cursors[tp].stored.offset)
            for tp, hw in highwaters.items()
            if hw is not None and tp in self.cursors
        )

    async def restart_feeders(self) -> None:
        """Make the roles that wrote a topic found made again read theirs from offset 0."""
        while self._restart:
            role, topics = self._restart.pop()
            log.warning("the %s role reads %s again from offset 0", role, sorted(topics))
            await self.store.restart(role, topics)

    async def revalidate(self) -> dict[TopicPartition, int]:
        """Notice, without waiting for a batch, partitions claimed since by someone else (a
        restart of this role, or this processor was a zombie) and stale ones; the seeks."""
        current = await self.store.generations(self.role)
        seeks: dict[TopicPartition, int] = {}
        for partition, generation in sorted(self.generations.items()):
            if current.get(partition) == generation and partition not in self._stale:
                continue
            if self.reclaim_when_refused or partition in self._stale:
                seeks.update(await self._claim(partition, load=True))
                self._stale.discard(partition)
            else:
                log.warning(
                    "%s partition %d was claimed by another processor", self.role, partition
                )
                self._forget(partition)
        return seeks

    def owned(self) -> list[int]:
        return sorted(self.generations)

    # --------------------------------------------------------------------- batches

    def _accept(self, tp: TopicPartition, records: list[Record]) -> tuple[list[Record], int | None]:
        """The records of one partition that may be applied, and where to seek if not all."""
        c = self.cursors.get(tp)
        if c is None or tp[1] in self._stale:
            return [], None  # not ours (any more), or being taken over again: sought then
        if records[0].offset != c.start:
            return [], c.start
        if not c.checked:
            first = records[0]
            if digest(first) != c.stored.digest:
                # Another record where this processor read one: the log was made again (a
                # lost broker refilled by `jingmin replay`). Read it all again; the facts
                # it holds are applied already, so only what is new counts.
                log.warning(
                    "%s[%d]: the record before offset %d is not the one read: the topic was "
                    "made again; reading it from offset 0",
                    tp[0],
                    tp[1],
                    c.stored.offset,
                )
                self._made_again(tp)
                return [], 0
            c.checked = True
            c.start = c.stored.offset
            records = records[1:]
        run: list[Record] = []
        expected = c.start
        for record in records:
            if record.offset < expected:
                continue  # the same record twice in one batch (fetched again after a seek)
            if record.offset != expected:
                # Past a hole the rest waits: the next batch must start right after the run.
                return run, expected
            run.append(record)
            expected += 1
        return run, None

    async def batch(self, records: Sequence[Record], apply: Apply) -> dict[TopicPartition, int]:
        """Apply what may be applied of `records`; the seeks to make before the next batch.

        If applying or committing fails (the broker or the database away), the partitions
        involved are marked stale and the error raised: their memory may be ahead of the
        database, so the next batch first takes them over again from what is stored.
        """
        seeks: dict[TopicPartition, int] = {}
        for partition in sorted(self._stale):
            seeks.update(await self._claim(partition, load=True))
            self._stale.discard(partition)
        by_tp: dict[TopicPartition, list[Record]] = {}
        for record in records:
            by_tp.setdefault((record.topic, record.partition), []).append(record)
        runs: dict[int, dict[str, list[Record]]] = {}
        for tp, recs in by_tp.items():
            recs.sort(key=lambda r: r.offset)
            run, seek = self._accept(tp, recs)
            if seek is not None:
                seeks[tp] = seek
            if run:
                runs.setdefault(tp[1], {})[tp[0]] = run
        await self.restart_feeders()
        if not runs:
            return seeks
        try:
            await self._apply_and_commit(runs, apply)
        except Exception:
            self._stale |= set(runs) & set(self.generations)
            raise
        return seeks

    async def _apply_and_commit(
        self, runs: dict[int, dict[str, list[Record]]], apply: Apply
    ) -> None:
        for partition, by_topic in sorted(runs.items()):
            ordered = sorted(
                (r for rs in by_topic.values() for r in rs), key=lambda r: (r.topic, r.offset)
            )
            await apply(partition, ordered)
        pending = set(runs)
        while pending:
            writes = [self._write(p, runs[p]) for p in sorted(pending)]
            try:
                await self.store.commit(writes)
            except Refused as refused:
                lost = {p for role, p in refused.partitions if role == self.role}
                REFUSED.inc()
                log.warning(
                    "%s partitions %s were taken over by another processor; their batch is dropped",
                    self.role,
                    sorted(lost),
                )
                for partition in lost:
                    if self.reclaim_when_refused:
                        self._stale.add(partition)  # claimed again before the next batch
                    else:
                        self._forget(partition)
                pending -= lost
                continue
            for w in writes:
                for topic, (_before, after) in w.positions.items():
                    c = self.cursors[(topic, w.partition)]
                    c.stored, c.start, c.checked = after, after.offset, True
                if self.processor is not None:
                    self.processor.committed(w.partition)
            pending = set()

    def _write(self, partition: int, by_topic: dict[str, list[Record]]) -> PartitionWrite:
        positions = {}
        for topic, run in by_topic.items():
            c = self.cursors[(topic, partition)]
            last = run[-1]
            positions[topic] = (c.stored, Position(last.offset + 1, digest(last)))
        write = PartitionWrite(self.role, partition, self.generations[partition], positions)
        if self.processor is not None and self.role == ITEMS:
            write.items, write.chunks = self.processor.take_write(partition)
        return write

    # ---------------------------------------------------------------------- watchdog

    def check(self, tp: TopicPartition, position: int | None, highwater: int | None) -> int | None:
        """Where to seek a partition whose client is past what the database holds.

        The client's position can run past the stored offset with nothing handed over (a
        seek to a committed offset ahead of this database, records a rebalance dropped); on
        a quiet partition no later batch would show it. Seen on two checks in a row with no
        progress, the partition is sought back. A log shorter than the stored offset was
        made again: it is read from its start.
        """
        c = self.cursors.get(tp)
        if c is None:
            return None
        if not c.checked and highwater is not None and highwater < c.stored.offset:
            log.warning(
                "%s[%d]: the log ends at %d, before offset %d read: reading it from 0",
                tp[0],
                tp[1],
                highwater,
                c.stored.offset,
            )
            self._made_again(tp)
            return 0
        if position is None or position <= c.start:
            self._stalled.pop(tp, None)
            return None
        if self._stalled.get(tp) == c.start:
            self._stalled.pop(tp, None)
            log.warning(
                "%s[%d]: the client is at %d, nothing arrived from %d; seeking back",
                tp[0],
                tp[1],
                position,
                c.start,
            )
            return c.start
        self._stalled[tp] = c.start
        return None
