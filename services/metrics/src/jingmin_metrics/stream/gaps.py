"""Records a processor was never handed: found by their offsets and read directly.

The source topics are neither compacted nor written in transactions, so the offsets of a
partition are contiguous and the agent knows which one must come next: where faust sought
after a rebalance, then one past each record it took. faust itself treats a jump as records
it may skip (meant for compacted topics): its fetch loop counts the missing offsets as
acknowledged, and right after a seek it does not notice a jump of one at all (its read
offset means "next" there and "last" everywhere else). `make chaos` metrics-workers caught
exactly that: a record a fresh owner never received, its offset committed past. The agent
reads such a range itself, in order, before the record that revealed it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from eventkit import kafka, topics
from faust.types import TP

log = logging.getLogger(__name__)


class Expected:
    """The next offset due on each source partition this processor reads."""

    def __init__(self) -> None:
        self._next: dict[TP, int] = {}
        self._seen: dict[TP, int] = {}

    def reset(self, positions: Mapping[TP, int | None]) -> None:
        """Where faust sought each assigned partition (None: not known, nothing checked)."""
        self._next = {tp: offset for tp, offset in positions.items() if offset is not None}

    def take(self, tp: TP, offset: int) -> int | None:
        """Note the record at `offset`; the first offset skipped before it, if any."""
        due = self._next.get(tp)
        self._next[tp] = offset + 1 if due is None else max(due, offset + 1)
        return due if due is not None and offset > due else None

    def idle(self) -> list[tuple[TP, int]]:
        """Partitions whose due offset has not moved since the last call, with that offset.

        A skipped record shows as a jump only when a later one arrives; the records at the
        end of a partition that then goes quiet need this look instead.
        """
        idle = [(tp, due) for tp, due in self._next.items() if self._seen.get(tp) == due]
        self._seen = dict(self._next)
        return idle


async def read_range(
    bootstrap: str, tp: TP, start: int, end: int, stall: float = 30.0
) -> list[ConsumerRecord]:
    """The records of `tp` from `start` up to, not including, `end`."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kafka.security_options(),
    )
    await consumer.start()
    try:
        partition = TopicPartition(tp.topic, tp.partition)
        consumer.assign([partition])
        consumer.seek(partition, start)
        return [
            record
            async for record in topics.read_to_end(consumer, {partition: end}, stall=stall)
            if start <= record.offset < end
        ]
    finally:
        await consumer.stop()
