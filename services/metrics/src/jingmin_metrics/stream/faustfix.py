"""Two workarounds that make faust-streaming 0.15.3 tables exact under at-least-once delivery.

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
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import faust
from faust.transport.producer import ProducerBuffer

_installed = False


def install() -> None:
    """Patch faust's producer buffer so flush() really drains it (idempotent)."""
    global _installed
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

    ProducerBuffer._send_pending = send_pending  # type: ignore[method-assign]
    ProducerBuffer.flush = flush  # type: ignore[method-assign]
    _installed = True


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
