"""Unit names for the boards and the JSON API: a worker loop that keeps `unit_names` in the
metrics database from intake's register, and the names a reader serves.

Counties come from GB/T 2260 (`eventkit.divisions`), stations and beats from the register;
labels and JSON keys stay codes, names are shown beside them.
"""

from __future__ import annotations

import asyncpg
from eventkit import divisions, unitnames
from eventkit.contracts import SchemaRegistry
from eventkit.worker import WorkerContext

from jingmin_metrics.service import DEAD_LETTER_TOPIC
from jingmin_metrics.settings import metrics_dsn, metrics_settings


class Names:
    """Names by code as last loaded: register units in service, counties from the table."""

    def __init__(self, units: list[unitnames.Unit] | None = None) -> None:
        self.units = units or []
        self._by_code = {u.code: u.name for u in self.units}

    @classmethod
    async def load(cls, pool: asyncpg.Pool) -> Names:
        return cls(await unitnames.current(pool))

    def name(self, code: str) -> str | None:
        """A unit's current name, a division's GB/T 2260 name, or None when unknown."""
        if len(code) > 6:
            return self._by_code.get(code)
        return divisions.name(code)

    def info(self, bureaus: set[str]) -> list[tuple[str, str, str]]:
        """(code, name, level) of every county in `bureaus` and of the register's bureaus,
        then every registered station and beat: what `jingmin_unit_info` exports."""
        counties = bureaus | {u.bureau for u in self.units}
        rows = [(c, n, "county") for c in sorted(counties) if (n := divisions.name(c))]
        return rows + [(u.code, u.name, u.kind) for u in self.units]


async def run(ctx: WorkerContext, restart_delay: float = 5.0) -> None:
    """Follow the register into the metrics database (where the readers look)."""
    settings = metrics_settings()
    validate = SchemaRegistry.load().validate if settings.metrics_validate else None
    pool = await asyncpg.create_pool(metrics_dsn(settings), min_size=1, max_size=2)
    try:
        await unitnames.keep(
            ctx,
            pool,
            service="metrics",
            dead_letter_topic=DEAD_LETTER_TOPIC,
            validate=validate,
            restart_delay=restart_delay,
        )
    finally:
        await pool.close()
