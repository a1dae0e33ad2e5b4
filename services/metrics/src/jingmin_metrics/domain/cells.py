"""Cells: sums of observations per (bureau, day) chunk, kept exact with integer arithmetic.

A chunk is what one snapshot record carries for one source partition: the cells of one
bureau for one bureau day, or its current gauges (day "now").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jingmin_metrics.domain.item import Observation
from jingmin_metrics.domain.measures import HIST_WIDTH, MEASURES, Kind, bucket_index

NOW = "now"
ChunkKey = tuple[str, str]  # (bureau, day or "now")
CellKey = tuple[str, tuple[str, ...]]  # (measure, dims)
Value = int | list[int]


def add_value(current: Value | None, measure: str, amount: int, sign: int) -> Value:
    """`current` plus (sign ×) one observation of `amount`."""
    if MEASURES[measure].kind is Kind.HISTOGRAM:
        vector = list(current) if isinstance(current, list) else [0] * HIST_WIDTH
        vector[0] += sign
        vector[1] += sign * amount
        vector[2 + bucket_index(amount)] += sign
        return vector
    return (current if isinstance(current, int) else 0) + sign * amount


def is_zero(value: Value) -> bool:
    return not any(value) if isinstance(value, list) else value == 0


class Cells:
    """The sum of many items' observations, chunked by (bureau, day)."""

    def __init__(self) -> None:
        self.chunks: dict[ChunkKey, dict[CellKey, Value]] = {}

    def apply(self, observations: Iterable[Observation], sign: int) -> set[ChunkKey]:
        touched: set[ChunkKey] = set()
        for obs in observations:
            chunk_key = (obs.bureau, obs.day or NOW)
            chunk = self.chunks.setdefault(chunk_key, {})
            cell_key = (obs.measure, obs.dims)
            value = add_value(chunk.get(cell_key), obs.measure, obs.value, sign)
            if is_zero(value):
                chunk.pop(cell_key, None)
            else:
                chunk[cell_key] = value
            touched.add(chunk_key)
        return touched

    def chunk(self, key: ChunkKey) -> dict[CellKey, Value]:
        return self.chunks.get(key, {})

    def __iter__(self) -> Iterator[ChunkKey]:
        return iter(self.chunks)


def chunk_cells(cells: Mapping[CellKey, Value]) -> list[list[Any]]:
    """A chunk's cells in a canonical order, as JSON-ready rows [measure, dims, value]."""
    return [[m, list(d), v] for (m, d), v in sorted(cells.items())]


def cells_from_rows(rows: Iterable[list[Any]]) -> dict[CellKey, Value]:
    out: dict[CellKey, Value] = {}
    for measure, dims, value in rows:
        out[(measure, tuple(dims))] = value
    return out
