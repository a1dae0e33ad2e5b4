"""SQL that read models share: the per-item deadlines table of deadline-keeping aggregates."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol


class DeadlineRow(Protocol):
    @property
    def due_at(self) -> datetime: ...
    @property
    def met_at(self) -> datetime | None: ...
    @property
    def breached(self) -> bool: ...
    @property
    def cancelled(self) -> bool: ...


def deadlines_upsert(table: str, key: str, first: int) -> str:
    """Upsert `table` (key, deadline, bureau, due_at, met_at, breached_at, cancelled).

    $1 is the item's id, $2 its bureau, and $first to $first+4 the five arrays of
    `deadline_arrays`. A breach is stored as the time it was due.
    """
    names, due, met, breached, cancelled = (f"${first + i}" for i in range(5))
    return f"""INSERT INTO {table} ({key}, deadline, bureau, due_at, met_at, breached_at,
                   cancelled)
               SELECT $1, d.name, $2, d.due_at, d.met_at,
                      CASE WHEN d.breached THEN d.due_at END, d.cancelled
               FROM unnest({names}::text[], {due}::timestamptz[], {met}::timestamptz[],
                           {breached}::boolean[], {cancelled}::boolean[])
                    AS d(name, due_at, met_at, breached, cancelled)
               ON CONFLICT ({key}, deadline) DO UPDATE SET due_at = excluded.due_at,
                   met_at = excluded.met_at, breached_at = excluded.breached_at,
                   cancelled = excluded.cancelled"""


def deadline_arrays(deadlines: Mapping[str, DeadlineRow]) -> list[list[Any]]:
    """The parameters of `deadlines_upsert`: names, due, met, breached and cancelled."""
    items = list(deadlines.items())
    return [
        [name for name, _ in items],
        [d.due_at for _, d in items],
        [d.met_at for _, d in items],
        [d.breached for _, d in items],
        [d.cancelled for _, d in items],
    ]
