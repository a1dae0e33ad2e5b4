"""Three workarounds that make faust-streaming 0.15.3 tables exact under at-least-once delivery.

1. `ProducerBuffer.flush()` in faust gives up after 0.1 s without progress
   (`flush_atmost` returns on its first timeout), and `Consumer._commit_offsets` relies on it
   before committing source offsets. Table writes go through that buffer (`send_soon`), so a
   commit could cover events whose changelog records were still unsent; a crash or a
   rebalance then loses those updates. Measured on the Tansu dev broker: a changelog record
   left the buffer 17 s after the offset that depended on it was committed, and the next
   generation's recovery replayed an older value. `install()` makes `flush()` wait until the
   buffer is empty *and* the message being handed to the Kafka client has been handed over;
   the driver then flushes the Kafka client itself (acks=all).

2. On the memory store, recovery replays the changelog over live data, even for partitions
   the worker keeps, and a zombie writer during a rebalance can append an older value after
   a newer one. `MergingTable` applies changelog records by *merging* them into what the
   store holds, with a merge function that is a semilattice join (commutative, associative,
   idempotent): an older or duplicated record can never remove a fact that a newer one added.

3. Even so, `make chaos` (a processor killed -9 three times while another joins and leaves)
   found a few events whose offsets were committed but whose changelog records no later
   owner recovered: 2 to 144 events in a run, never applied again. So the committed offset
   is not trusted as proof that the table holds an event. Each item's record says how far
   into its source partition it reaches (`item.note_offset`); after every recovery, once
   faust has sought the committed offsets, `install(resume=...)` seeks back any source
   partition the recovered table holds less of. A changelog partition is written and
   recovered in order, so whatever recovery read is a prefix, and the events after its
   furthest offset are read again: duplicates are free (applying is idempotent), a lost
   record is not. The seek also tells the agent where each partition starts, so that it
   can notice records the consumer skipped (`gaps.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import faust
from faust.transport.consumer import Consumer
from faust.transport.producer import ProducerBuffer
from faust.types import TP

log = logging.getLogger(__name__)

# Given the consumer's assignment: where reading of each source partition should resume
# at the latest, judged by what the recovered table holds.
Resume = Callable[[set[TP]], Mapping[TP, int]]
# Told where every assigned partition's reading starts after a seek (None: not known).
Sought = Callable[[Mapping[TP, int | None]], None]
_resume: Resume | None = None
_sought: Sought | None = None
_installed = False


def install(resume: Resume | None = None, sought: Sought | None = None) -> None:
    """Patch faust's producer buffer so flush() really drains it, and its seek to committed
    offsets so it goes no further than `resume` says the table holds, then tells `sought`
    where each partition starts (idempotent)."""
    global _installed, _resume, _sought
    if resume is not None:
        _resume = resume
    if sought is not None:
        _sought = sought
    if _installed:
        return
    original_send = ProducerBuffer._send_pending

    async def send_pending(self: Any, fut: Any) -> None:
        # Counted from the moment the message leaves the queue until the Kafka client holds
        # it: `size` alone misses that message, and the client's own flush would too.
        self._jingmin_inflight = getattr(self, "_jingmin_inflight", 0) + 1
        try:
            await original_send(self, fut)
        finally:
            self._jingmin_inflight -= 1
            self.message_sent.set()

    async def flush(self: Any) -> None:
        while self.size or getattr(self, "_jingmin_inflight", 0):
            if self.state != "running" and self.size:
                raise RuntimeError("Cannot flush: producer buffer not running")
            self.message_sent.clear()
            try:
                await asyncio.wait_for(self.message_sent.wait(), timeout=0.1)
            except TimeoutError:
                continue

    original_perform_seek = Consumer.perform_seek

    async def perform_seek(self: Any) -> None:
        await original_perform_seek(self)
        assigned = set(self.assignment())
        starts: dict[TP, int | None] = {tp: self._committed_offset.get(tp) for tp in assigned}
        for tp, offset in sorted((_resume(assigned) if _resume else {}).items()):
            committed = starts.get(tp)
            if committed is not None and offset < committed:
                starts[tp] = offset
                log.warning(
                    "%s[%d]: the recovered table holds events up to offset %d, the group "
                    "committed %d; reading the %d after it again",
                    tp.topic,
                    tp.partition,
                    offset,
                    committed,
                    committed - offset,
                )
                await self.seek(tp, offset)
        # A partition the group never committed is not sought at all, and records fetched
        # for it while it was paused (during recovery) were dropped with the client's
        # position already past them: seen in test_lost_records, 4 cases never applied.
        # Read it from the start again (applying is idempotent). Offset 0, not a ListOffsets
        # answer: seeking asks the broker nothing (a log starting later resets to its start),
        # and asking about a topic a refilled broker lacks would make Tansu create it with
        # its default partition count.
        for tp, start in starts.items():
            if start is None and tp.topic not in self.app.tables.changelog_topics:
                await self.seek(tp, 0)
                starts[tp] = 0
        if _sought is not None:
            _sought(starts)

    ProducerBuffer._send_pending = send_pending  # type: ignore[method-assign]
    ProducerBuffer.flush = flush  # type: ignore[method-assign]
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    _installed = True


async def acknowledge(consumer: Any, tp: TP, start: int, end: int) -> None:
    """Count offsets `start` to `end` - 1 of `tp` as handled: records the agent read itself
    (`gaps.py`). faust commits a partition only up to its first offset not acknowledged."""
    await consumer._add_gap(tp, start, end - 1)


Merge = Callable[[bytes, bytes], bytes]


class MergingTable(faust.Table):  # type: ignore[type-arg]
    """A bytes→bytes table whose changelog records merge into the store instead of replacing.

    Only the memory store is supported: it is the one whose recovery semantics were verified
    (and `_key_partition` is its bookkeeping of which partition a key came from).
    """

    def __init__(self, *args: Any, merge: Merge, **kwargs: Any) -> None:
        self._merge = merge
        super().__init__(*args, key_type=bytes, value_type=bytes, default=None, **kwargs)

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        store = self.data
        data = getattr(store, "data", None)
        partitions = getattr(store, "_key_partition", None)
        if not isinstance(data, dict) or not isinstance(partitions, dict):
            raise RuntimeError("MergingTable needs the memory:// table store")
        for event in batch:
            key = event.message.key
            value = event.message.value
            if key is None:
                continue
            if value is None:
                data.pop(key, None)
                partitions.pop(key, None)
                continue
            current = data.get(key)
            data[key] = value if current is None else self._merge(current, value)
            partitions[key] = event.message.partition
