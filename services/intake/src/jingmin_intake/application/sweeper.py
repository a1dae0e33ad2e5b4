"""Sweeper loop: records DeadlineBreached for promises nobody acted on, once per breach."""

from __future__ import annotations

import logging
from datetime import timedelta

from eventkit.personal import Vault
from eventkit.store import PostgresEventStore
from eventkit.worker import WorkerContext

from jingmin_intake.adapters import read_model
from jingmin_intake.application.handlers import CaseCommands
from jingmin_intake.domain.policy import DeadlinePolicy

log = logging.getLogger(__name__)


async def sweep_once(commands: CaseCommands, *, limit: int = 500) -> int:
    """One pass over due deadlines; returns how many breaches were recorded.

    Exactly once, also across restarts and with several sweepers: the breach is decided
    from the case's own history (which remembers earlier breaches) and appended with
    optimistic concurrency, so a second sweeper's append of the same version fails.
    """
    async with commands.store.pool.acquire() as conn:
        due = await read_model.due_for_sweep(conn, DeadlinePolicy().sweep_grace_seconds, limit)
    recorded = 0
    for case_id, grace, deadlines in due:
        recorded += await commands.sweep(case_id, timedelta(seconds=grace), deadlines)
    return recorded


async def run(ctx: WorkerContext, interval: float = 5.0) -> None:
    commands = CaseCommands(PostgresEventStore(ctx.pool), Vault(ctx.pool, ctx.settings))
    await ctx.repeat(lambda: sweep_once(commands), interval, "deadline sweep")
