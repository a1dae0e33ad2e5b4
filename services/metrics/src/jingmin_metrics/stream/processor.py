"""The processors' core, free of faust: apply facts to items, keep per-partition cells.

Faust agents (`stream/app.py`) feed it; tests drive it directly. Per source partition it
holds the sum of the observations of the items that live there, maintained incrementally
(an item's old contribution out, its new one in) and rebuilt from the item table whenever
the worker's partitions change. Cells are therefore a function of the item table, and the
item table a semilattice of facts: the figures are exact however often events arrive.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from jingmin_metrics.domain import item as items
from jingmin_metrics.domain.cells import Cells, ChunkKey
from jingmin_metrics.domain.facts import Fact


@dataclass
class PartitionState:
    cells: Cells = field(default_factory=Cells)
    # What each item currently contributes, so an update subtracts exactly that.
    contributions: dict[bytes, list[items.Observation]] = field(default_factory=dict)
    dirty: set[ChunkKey] = field(default_factory=set)
    # Set when this worker (re)built the partition: the publisher then rewrites every chunk
    # of it and removes chunks it no longer has, stamped with a newer epoch.
    epoch: int = 0
    needs_refresh: bool = True
    facts: int = 0
    # The fact count last published in the partition's status record: a fact that changes
    # no cell (a visit scheduled, a callback expired) must still be reported as applied.
    published_facts: int = -1
    # Offset of the last status record published: a lower one next time means the topic
    # was lost and made again, and whatever was published before is gone.
    status_offset: int = -1
    # Facts applied by type (short name), so the oracle can say what has not arrived.
    by_type: Counter[str] = field(default_factory=Counter)
    # Per source topic, the offset after the last event the item table holds for this
    # partition: where reading resumes if the changelog holds less than the commit says.
    read: dict[str, int] = field(default_factory=dict)


class Processor:
    """Per-item state in, per-partition cells out."""

    def __init__(self) -> None:
        self.partitions: dict[int, PartitionState] = {}
        # Decoded item states of active partitions (the table holds the encoded ones).
        self.states: dict[bytes, items.State] = {}

    # -------------------------------------------------------------------- ownership

    def rebuild(self, active: Iterable[int], table: Iterable[tuple[bytes, bytes]]) -> None:
        """Recompute every active partition's cells from the item table after a rebalance."""
        wanted = set(active)
        epoch = time.time_ns()
        self.partitions = {p: PartitionState(epoch=epoch) for p in wanted}
        self.states = {}
        for key, raw in table:
            if raw is None:
                continue
            state = items.decode(raw)
            partition = state.get("p")
            if partition not in wanted:
                continue  # a standby copy, or a partition this worker no longer owns
            part = self.partitions[partition]
            self.states[key] = state
            contribution = items.observations(state)
            part.contributions[key] = contribution
            part.cells.apply(contribution, +1)
            part.facts += items.fact_count(state)
            part.by_type.update(items.fact_types(state))
            for topic, offset in items.read_offsets(state).items():
                if part.read.get(topic, 0) < offset:
                    part.read[topic] = offset

    def owns(self, partition: int) -> bool:
        return partition in self.partitions

    # --------------------------------------------------------------------- applying

    def apply(
        self,
        partition: int,
        key: bytes,
        stream_id: str,
        version: int,
        fact: Fact,
        stored: bytes | None,
        position: tuple[str, int] | None = None,
    ) -> bytes | None:
        """Apply one fact to one item; the item's new encoded state, or None if a duplicate.

        `stored` is the table's current value for the key (used when the item is not cached);
        `position` the source topic and offset of the event, recorded in the new state.
        """
        part = self.partitions[partition]
        state = self.states.get(key)
        if state is None:
            state = items.decode(stored) if stored is not None else items.new_state(partition)
            state["p"] = partition
            self.states[key] = state
            if key not in part.contributions:
                # Known to the table but not yet counted here (cannot happen after a rebuild,
                # kept so a missed rebuild can never double count).
                contribution = items.observations(state)
                part.contributions[key] = contribution
                part.dirty |= part.cells.apply(contribution, +1)
                part.facts += items.fact_count(state)
                part.by_type.update(items.fact_types(state))
        if not items.add_fact(state, stream_id, version, fact):
            return None
        part.facts += 1
        part.by_type[fact["t"]] += 1
        if position is not None:
            topic, offset = position
            items.note_offset(state, topic, offset)
            part.read[topic] = max(part.read.get(topic, 0), offset + 1)
        new = items.observations(state)
        old = part.contributions.get(key, [])
        if new != old:
            part.dirty |= part.cells.apply(old, -1)
            part.dirty |= part.cells.apply(new, +1)
            part.contributions[key] = new
        return items.encode(state)

    def take_dirty(self, partition: int) -> set[ChunkKey]:
        part = self.partitions[partition]
        dirty, part.dirty = part.dirty, set()
        return dirty
