"""A service's own copy of the unit register's names (`intake.unit.events.v1`).

Intake owns the register; a service that shows names (metrics' boards, the complaint form)
keeps a `unit_names` table of its own (code, bureau, station, kind, name, retired, version;
its own migration creates it, see metrics' `2002_unit_names.sql`),
and fills it from the topic under `IdempotentConsumer` with `apply` as the handler. Counties
are not on the topic: their names come from `eventkit.divisions`.

`apply` is idempotent on its own, too: a row moves only to a higher stream version, so a
replay, a redelivery past the tracking table (a renamed consumer) or an old record seen
again never brings back an old name.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from eventkit.consumer import IdempotentConsumer, Validator, consume_until_stopped
from eventkit.envelope import Envelope
from eventkit.settings import KernelSettings

if TYPE_CHECKING:
    from eventkit.worker import WorkerContext

TOPIC = "intake.unit.events.v1"
REGISTERED = "jingmin.intake.UnitRegistered.v1"
RENAMED = "jingmin.intake.UnitRenamed.v1"
RETIRED = "jingmin.intake.UnitRetired.v1"
TYPES = (REGISTERED, RENAMED, RETIRED)


@dataclass(frozen=True)
class Unit:
    code: str
    bureau: str
    station: str
    kind: str  # station | beat
    name: str


async def apply(conn: asyncpg.Connection, envelope: Envelope) -> None:
    """Apply one register event inside the consumer's transaction; other types are ignored."""
    if envelope.type not in TYPES:
        return
    data = envelope.data
    name = data.get("name") if envelope.type == REGISTERED else data.get("new_name")
    # Without a stream version (not how intake publishes) the tracking row alone dedupes.
    version = envelope.streamversion if envelope.streamversion is not None else 0
    await conn.execute(
        """INSERT INTO unit_names (code, bureau, station, kind, name, retired, version)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (code) DO UPDATE SET
               name = COALESCE(EXCLUDED.name, unit_names.name),
               retired = EXCLUDED.retired,
               version = EXCLUDED.version
           WHERE unit_names.version < EXCLUDED.version OR EXCLUDED.version = 0""",
        data["code"],
        data["bureau"],
        data["station"],
        "station" if len(data["code"]) == 9 else "beat",
        name,
        envelope.type == RETIRED,
        version,
    )


async def current(conn: asyncpg.Connection | asyncpg.Pool, prefix: str = "") -> list[Unit]:
    """The named units in service under a code prefix, by code (retired ones left out)."""
    rows = await conn.fetch(
        """SELECT code, bureau, station, kind, name FROM unit_names
           WHERE NOT retired AND name IS NOT NULL AND code LIKE $1 || '%' ORDER BY code""",
        prefix,
    )
    return [Unit(**dict(r)) for r in rows]


async def stations(conn: asyncpg.Connection | asyncpg.Pool, bureau: str) -> list[Unit]:
    """A county's stations in service, by code (what a citizen may name as a subject)."""
    return [u for u in await current(conn, bureau) if u.kind == "station"]


async def follow(
    settings: KernelSettings,
    stop: asyncio.Event,
    pool: asyncpg.Pool,
    *,
    service: str,
    dead_letter_topic: str,
    validate: Validator | None = None,
) -> None:
    """One session of `<service>.unit-names` on the register's topic into `pool`'s table,
    until `stop`; run it under `WorkerContext.repeat` so broker trouble starts a new one."""
    name = f"{service}.unit-names"
    await consume_until_stopped(
        settings,
        stop,
        group_id=name,
        topics=[TOPIC],
        build=lambda producer: IdempotentConsumer(
            pool,
            name=name,
            service=service,
            handler=apply,
            producer=producer,
            dead_letter_topic=dead_letter_topic,
            validate=validate,
        ),
    )


async def keep(
    ctx: WorkerContext,
    pool: asyncpg.Pool,
    *,
    service: str,
    dead_letter_topic: str,
    validate: Validator | None = None,
    restart_delay: float = 5.0,
) -> None:
    """A worker loop's body: `follow` until `ctx.stop`, a new session after broker trouble.

    `pool` is the database the service's readers look in (its worker pool, or another one).
    """

    async def session() -> None:
        await follow(
            ctx.settings,
            ctx.stop,
            pool,
            service=service,
            dead_letter_topic=dead_letter_topic,
            validate=validate,
        )

    await ctx.repeat(session, restart_delay, f"{service} unit names")
