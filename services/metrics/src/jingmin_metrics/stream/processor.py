"""The processors' core, free of faust: apply facts to items, keep per-partition cells.

Faust agents (`stream/app.py`) feed it batches; tests drive it directly. Per owned source
partition it holds the items stored there (loaded from the metrics database when the
partition is taken over) and the sum of their observations, maintained incrementally (an
item's old contribution out, its new one in). `take_write` hands over what a batch changed,
each changed item once, for the transaction that also moves the partition's read position.
Cells are a function of the items, and an item a semilattice of facts: the figures are
exact however often an event arrives.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from jingmin_metrics.domain import item as items
from jingmin_metrics.domain.cells import Cells, ChunkKey
from jingmin_metrics.domain.facts import Fact
from jingmin_metrics.figures import snapshot


@dataclass
class PartitionState:
    cells: Cells = field(default_factory=Cells)
    # What each item currently contributes, so an update subtracts exactly that.
    contributions: dict[bytes, list[items.Observation]] = field(default_factory=dict)
    # Chunks and items changed by the batch being applied (written with its positions).
    changed_chunks: set[ChunkKey] = field(default_factory=set)
    changed_items: set[bytes] = field(default_factory=set)
    # Changed items whose contribution to the cells is up to date (`settle`).
    settled: set[bytes] = field(default_factory=set)
    facts: int = 0
    # Facts when the batch began: a batch that added any writes the status record (a fact
    # that changes no cell, a visit scheduled, must still be reported as applied).
    facts_at_batch: int = 0
    # Facts applied by type (short name), so the oracle can say what has not arrived.
    by_type: Counter[str] = field(default_factory=Counter)


class Processor:
    """Per-item state in, per-partition cells out."""

    def __init__(self) -> None:
        self.partitions: dict[int, PartitionState] = {}
        # Decoded item states of owned partitions.
        self.states: dict[bytes, items.State] = {}
        self._keys: dict[int, set[bytes]] = {}

    # -------------------------------------------------------------------- ownership

    def load(self, partition: int, stored: Iterable[tuple[bytes, bytes]]) -> None:
        """Take `partition` over with the items the database holds for it."""
        self.drop(partition)
        part = PartitionState()
        keys: set[bytes] = set()
        for key, raw in stored:
            state = items.decode(raw)
            state["p"] = partition
            self.states[key] = state
            keys.add(key)
            contribution = items.observations(state)
            part.contributions[key] = contribution
            part.cells.apply(contribution, +1)
            part.facts += items.fact_count(state)
            part.by_type.update(items.fact_types(state))
        part.facts_at_batch = part.facts
        self.partitions[partition] = part
        self._keys[partition] = keys

    def drop(self, partition: int) -> None:
        """Forget `partition` (lost, or its memory is no longer what the database holds)."""
        self.partitions.pop(partition, None)
        for key in self._keys.pop(partition, set()):
            self.states.pop(key, None)

    def owns(self, partition: int) -> bool:
        return partition in self.partitions

    # --------------------------------------------------------------------- applying

    def apply(self, partition: int, key: bytes, stream_id: str, version: int, fact: Fact) -> bool:
        """Apply one fact to one item; False if the item already had it."""
        part = self.partitions[partition]
        state = self.states.get(key)
        if state is None:
            state = items.new_state(partition)
            self.states[key] = state
            self._keys[partition].add(key)
        if not items.add_fact(state, stream_id, version, fact):
            return False
        part.facts += 1
        part.by_type[fact["t"]] += 1
        part.changed_items.add(key)
        return True

    def settle(self, partition: int) -> None:
        """Bring the cells up to date with the items the batch changed: each item's
        observations are derived once per batch, however many of its facts it brought."""
        part = self.partitions[partition]
        for key in part.changed_items - part.settled:
            new = items.observations(self.states[key])
            old = part.contributions.get(key, [])
            if new != old:
                part.changed_chunks |= part.cells.apply(old, -1) | part.cells.apply(new, +1)
                part.contributions[key] = new
        part.settled = set(part.changed_items)

    def take_write(
        self, partition: int, now: float | None = None
    ) -> tuple[list[tuple[bytes, bytes]], list[tuple[str, bytes | None]]]:
        """The batch's changes of `partition`: encoded items, and figure records (the
        changed chunks, None for an emptied one, and the status when facts were added).

        The records carry epoch 0: in the database a partition's owner is fenced by the
        transaction (`SnapshotView` drops records of older epochs, which here must not
        happen to a record an earlier owner wrote and this one did not rewrite)."""
        self.settle(partition)
        part = self.partitions[partition]
        written = [(key, items.encode(self.states[key])) for key in sorted(part.changed_items)]
        records: list[tuple[str, bytes | None]] = []
        for bureau, day in sorted(part.changed_chunks):
            cells = part.cells.chunk((bureau, day))
            value = snapshot.encode_chunk(partition, 0, bureau, day, cells) if cells else None
            records.append((snapshot.chunk_key(partition, bureau, day), value))
        if part.facts != part.facts_at_batch:
            status = snapshot.encode_status(
                partition,
                0,
                part.facts,
                len(part.contributions),
                time.time() if now is None else now,
                part.by_type,
            )
            records.append((snapshot.status_key(partition), status))
        return written, records

    def committed(self, partition: int) -> None:
        """The batch's changes of `partition` are stored: start the next batch."""
        part = self.partitions[partition]
        part.changed_chunks = set()
        part.changed_items = set()
        part.settled = set()
        part.facts_at_batch = part.facts
