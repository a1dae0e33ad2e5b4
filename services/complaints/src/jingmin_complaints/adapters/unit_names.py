"""Unit names for the public complaint form: a worker loop that keeps `unit_names` in the
complaints database from intake's register, and the stations the form offers.

Counties come from GB/T 2260 (`eventkit.divisions`), stations from the register; the form
submits codes, names are only shown.
"""

from __future__ import annotations

import asyncpg
from eventkit import unitnames
from eventkit.worker import WorkerContext

from jingmin_complaints.application.consumers import source_validator
from jingmin_complaints.integration.messages import DEAD_LETTER_TOPIC

CONSUMER_NAME = "complaints.unit-names"  # group and tracking name (eventkit.unitnames.follow)


async def stations(
    conn: asyncpg.Connection | asyncpg.Pool, bureau: str, configured: dict[str, str]
) -> dict[str, str]:
    """Station code → name a citizen may choose in `bureau`: the register's stations in
    service, and the ones the bureau's complaint policy still names (`units`, set before
    the register existed); the register's name wins for a code in both."""
    found = {k: v for k, v in configured.items() if k.startswith(bureau)}
    found.update({u.code: u.name for u in await unitnames.stations(conn, bureau)})
    return dict(sorted(found.items()))


async def run(ctx: WorkerContext, restart_delay: float = 5.0) -> None:
    """Follow the register into the complaints database (the worker's own pool)."""
    await unitnames.keep(
        ctx,
        ctx.pool,
        service="complaints",
        dead_letter_topic=DEAD_LETTER_TOPIC,
        validate=source_validator(),
        restart_delay=restart_delay,
    )
