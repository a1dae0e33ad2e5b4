"""Figure records (table `metrics_chunks` of the metrics database), and the merged view.

One record per (source partition, bureau, bureau day) holds that partition's cells for the
day; one per (partition, bureau, "now") the current gauges; one `_status` record per
partition says how many facts it has applied. Readers sum the partitions. (The epochs are
from when these records went through a compacted topic; processors now write epoch 0.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from jingmin_metrics.domain.cells import CellKey, ChunkKey, Value, add_value, is_zero
from jingmin_metrics.domain.measures import MEASURES, Kind

FORMAT = 1
STATUS = "_status"


def chunk_key(partition: int, bureau: str, day: str) -> str:
    return f"{partition:03d}/{bureau}/{day}"


def status_key(partition: int) -> str:
    return f"{partition:03d}/{STATUS}"


def encode_chunk(
    partition: int, epoch: int, bureau: str, day: str, cells: Mapping[CellKey, Value]
) -> bytes:
    body = {
        "v": FORMAT,
        "p": partition,
        "epoch": epoch,
        "bureau": bureau,
        "day": day,
        "cells": [[m, list(d), v] for (m, d), v in sorted(cells.items())],
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def encode_status(
    partition: int,
    epoch: int,
    facts: int,
    items: int,
    at: float,
    by_type: Mapping[str, int] | None = None,
) -> bytes:
    body = {
        "v": FORMAT,
        "p": partition,
        "epoch": epoch,
        "facts": facts,
        "items": items,
        "at": at,
        "by_type": dict(sorted((by_type or {}).items())),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _sum(a: Value | None, b: Value) -> Value:
    if isinstance(b, list):
        base = list(a) if isinstance(a, list) else [0] * len(b)
        return [x + y for x, y in zip(base, b, strict=True)]
    return (a if isinstance(a, int) else 0) + b


Merged = dict[ChunkKey, dict[CellKey, Value]]


@dataclass
class SnapshotView:
    """The latest record per key, with stale epochs ignored, summed over partitions."""

    chunks: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: dict[int, dict[str, Any]] = field(default_factory=dict)
    version: int = 0
    _merged: Merged | None = None
    _merged_version: int = -1

    def reset(self) -> None:
        self.chunks.clear()
        self.status.clear()
        self.version += 1

    def accept(self, key: str, value: bytes | None) -> None:
        """Apply one snapshot record (value None is a tombstone)."""
        if value is None:
            if key.endswith("/" + STATUS):
                return
            if self.chunks.pop(key, None) is not None:
                self.version += 1
            return
        record = json.loads(value)
        if record.get("v") != FORMAT:
            return  # a newer format this reader does not know: leave it to newer readers
        partition = int(record["p"])
        epoch = int(record["epoch"])
        current = self.status.get(partition, {}).get("epoch", 0)
        if key.endswith("/" + STATUS):
            if epoch < current:
                return  # a worker that lost the partition (a zombie) is still talking
            if epoch > current:
                # The new owner has rewritten every chunk of the partition: anything older
                # is what a previous owner left behind.
                for k in [k for k, c in self.chunks.items() if c["p"] == partition]:
                    if self.chunks[k]["epoch"] < epoch:
                        del self.chunks[k]
            self.status[partition] = record
            self.version += 1
            return
        if epoch < current:
            return
        self.chunks[key] = record
        self.version += 1

    def merged(self) -> Merged:
        """Cells per (bureau, day), summed over source partitions (cached per version)."""
        if self._merged is not None and self._merged_version == self.version:
            return self._merged
        out: Merged = {}
        for record in self.chunks.values():
            target = out.setdefault((record["bureau"], record["day"]), {})
            for measure, dims, value in record["cells"]:
                cell = (measure, tuple(dims))
                total = _sum(target.get(cell), value)
                if is_zero(total):
                    target.pop(cell, None)
                else:
                    target[cell] = total
        self._merged, self._merged_version = out, self.version
        return out

    def facts(self) -> int:
        return sum(int(s.get("facts", 0)) for s in self.status.values())

    def facts_by_type(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for status in self.status.values():
            for t, n in (status.get("by_type") or {}).items():
                out[t] = out.get(t, 0) + int(n)
        return out


def merge_observations_into(merged: Merged, rows: Iterable[tuple[str, str, CellKey, int]]) -> None:
    """Add (bureau, day, cell, amount) observations to a merged map (used by the oracle)."""
    for bureau, day, (measure, dims), amount in rows:
        target = merged.setdefault((bureau, day), {})
        value = add_value(target.get((measure, dims)), measure, amount, +1)
        target[(measure, dims)] = value


def iter_cells(merged: Merged) -> Iterator[tuple[str, str, str, tuple[str, ...], Value]]:
    for (bureau, day), cells in merged.items():
        for (measure, dims), value in cells.items():
            yield bureau, day, measure, dims, value


def is_histogram(measure: str) -> bool:
    return MEASURES[measure].kind is Kind.HISTOGRAM
