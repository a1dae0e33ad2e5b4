"""Follows `metrics.figures.snapshot.v1` into a `SnapshotView` (what the exporter serves).

Stateless: it reads the compacted topic from the beginning by explicit assignment (no
consumer group, nothing committed), so any number of exporters can run, and one that
restarts rebuilds the same view. If the broker lost the topic (a dev broker restarted,
refilled by `jingmin replay`), offsets go backwards: the view is dropped and rebuilt.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from eventkit import kafka, topics

from jingmin_metrics.figures.snapshot import SnapshotView
from jingmin_metrics.service import SNAPSHOT_TOPIC

log = logging.getLogger(__name__)


class SnapshotReader:
    def __init__(self, bootstrap: str, topic: str = SNAPSHOT_TOPIC) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.view = SnapshotView()
        self.caught_up = asyncio.Event()
        self.last_record_at = 0.0
        self._positions: dict[int, int] = {}

    # A deadline across many reads, not one await: asyncio.timeout would not fit.
    async def catch_up(self, timeout: float = 30.0) -> SnapshotView:  # noqa: ASYNC109
        """Read the topic once to its current end (for one-shot readers such as the oracle)."""
        consumer = await self._consumer()
        try:
            partitions, ends = await self._assign(consumer, timeout)
            deadline = time.monotonic() + timeout
            while await _behind(consumer, partitions, ends):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not read {self.topic} to its end")
                self._apply(await consumer.getmany(timeout_ms=500, max_records=5000))
        finally:
            await consumer.stop()
        self.caught_up.set()
        return self.view

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the topic until `stop`; broker trouble restarts the reading."""
        while not stop.is_set():
            try:
                await self._follow(stop)
            except (Exception, asyncio.CancelledError) as exc:
                if not kafka.transient(exc):
                    raise
                log.warning("snapshot reader: %s: %s; retrying", type(exc).__name__, exc)
                try:
                    await asyncio.wait_for(stop.wait(), 2.0)
                except TimeoutError:
                    pass

    async def _consumer(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=32 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            **kafka.security_options(),
        )
        await consumer.start()
        return consumer

    async def _assign(
        self, consumer: AIOKafkaConsumer, wait: float
    ) -> tuple[list[TopicPartition], dict[TopicPartition, int]]:
        """Assign every partition from its beginning; with each partition's true end."""
        deadline = time.monotonic() + wait
        while True:
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                await consumer.topics()
                partitions = consumer.partitions_for_topic(self.topic)
            if partitions:
                break
            if time.monotonic() > deadline:
                raise LookupError(f"no topic {self.topic} on {self.bootstrap}")
            await asyncio.sleep(0.5)
        assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        return assigned, await topics.rewind(consumer, assigned)

    def _apply(self, batches: dict[TopicPartition, list]) -> int:  # type: ignore[type-arg]
        n = 0
        for tp, records in batches.items():
            for record in records:
                if record.key is None:
                    continue
                self.view.accept(record.key.decode(), record.value)
                self._positions[tp.partition] = record.offset + 1
                n += 1
        if n:
            self.last_record_at = time.time()
        return n

    async def _follow(self, stop: asyncio.Event) -> None:
        consumer = await self._consumer()
        try:
            # A new pass starts from nothing: the topic is the only truth.
            self.view.reset()
            self._positions.clear()
            partitions, ends = await self._assign(consumer, 30.0)
            pending = {tp for tp in partitions if ends[tp] > 0}
            if not pending:
                self.caught_up.set()
            while not stop.is_set():
                self._apply(await consumer.getmany(timeout_ms=500, max_records=5000))
                if self._truncated(consumer, partitions, {tp: ends[tp] for tp in pending}):
                    # The log shrank under us: the broker lost it and it is being refilled.
                    # (Also while catching up: the old ends would never be reached.)
                    log.warning("snapshot topic was truncated; rebuilding the view")
                    self.caught_up.clear()
                    return
                if len(consumer.partitions_for_topic(self.topic) or partitions) != len(partitions):
                    # Recreated with other partitions (a lost broker's topics made again).
                    log.warning("snapshot topic changed its partitions; rebuilding the view")
                    self.caught_up.clear()
                    return
                if pending:
                    pending = {tp for tp in pending if await _behind(consumer, [tp], ends)}
                    if not pending:
                        self.caught_up.set()
        finally:
            await consumer.stop()

    def _truncated(
        self,
        consumer: AIOKafkaConsumer,
        partitions: list[TopicPartition],
        pending: dict[TopicPartition, int],
    ) -> bool:
        """A partition's end is now below what was read from it, or below the end a
        catch-up still waits for (`pending`).

        Judged by the high watermark of the last fetch response, which is exact; Tansu's
        ListOffsets answers short of the end after a batch of several records, and compared
        with it every such batch looked like a truncation (the view was rebuilt over and over).
        """
        for tp in partitions:
            highwater = consumer.highwater(tp)
            floor = max(self._positions.get(tp.partition, 0), pending.get(tp, 0))
            if highwater is not None and highwater < floor:
                return True
        return False


async def _behind(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], ends: dict[TopicPartition, int]
) -> bool:
    for tp in partitions:
        if await consumer.position(tp) < ends[tp]:
            return True
    return False
