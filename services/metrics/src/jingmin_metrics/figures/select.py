"""Reading merged cells: by measure, scope (an administrative-code prefix) and day range."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from jingmin_metrics.domain.cells import NOW, Value
from jingmin_metrics.domain.measures import MEASURES
from jingmin_metrics.figures.snapshot import Merged


@dataclass(frozen=True)
class Cell:
    bureau: str
    day: str
    measure: str
    dims: tuple[str, ...]
    value: Value

    def dim(self, name: str) -> str:
        return self.dims[MEASURES[self.measure].dims.index(name)]

    @property
    def count(self) -> int:
        return self.value[0] if isinstance(self.value, list) else self.value


def index(merged: Merged) -> dict[str, list[Cell]]:
    """Every cell, grouped by measure (built once per snapshot version)."""
    out: dict[str, list[Cell]] = {}
    for (bureau, day), cells in merged.items():
        for (measure, dims), value in cells.items():
            # A record written before a measure gained a dimension (stored before an upgrade,
            # until the figures are rebuilt) is left out rather than read at wrong positions.
            if measure in MEASURES and len(dims) == len(MEASURES[measure].dims):
                out.setdefault(measure, []).append(Cell(bureau, day, measure, dims, value))
    return out


def in_scope(cell: Cell, scopes: Sequence[str]) -> bool:
    """A scope is a code prefix: a province (2), city (4), bureau (6) or station (9 digits)."""
    code = cell.dims[0] if MEASURES[cell.measure].dims[:1] == ("station",) else cell.bureau
    return any(code.startswith(s) or (cell.bureau.startswith(s) and len(s) <= 6) for s in scopes)


def cells(
    by_measure: dict[str, list[Cell]],
    measure: str,
    scopes: Sequence[str] | None = None,
    start: str | None = None,
    end: str | None = None,
) -> Iterator[Cell]:
    """Cells of one measure within scopes and bureau days [start, end] (gauges: day "now")."""
    for cell in by_measure.get(measure, ()):
        if cell.day != NOW:
            if start is not None and cell.day < start:
                continue
            if end is not None and cell.day > end:
                continue
        if scopes is not None and not in_scope(cell, scopes):
            continue
        yield cell
