"""Expiry loop: records CallbackExpired for callbacks nobody completed in their window."""

from __future__ import annotations

import logging

from eventkit.personal import Vault
from eventkit.store import PostgresEventStore
from eventkit.worker import WorkerContext

from jingmin_visits.adapters import read_model
from jingmin_visits.application.handlers import CallbackCommands

log = logging.getLogger(__name__)


async def expire_once(commands: CallbackCommands, *, limit: int = 500) -> int:
    """One pass; each expiry is decided from the callback's own history, so it is recorded once."""
    async with commands.store.pool.acquire() as conn:
        due = await read_model.expiring(conn, commands.clock(), limit)
    return sum([await commands.expire(callback_id) for callback_id in due])


async def run(ctx: WorkerContext, interval: float = 30.0) -> None:
    commands = CallbackCommands(PostgresEventStore(ctx.pool), Vault(ctx.pool, ctx.settings))
    await ctx.repeat(lambda: expire_once(commands), interval, "callback expiry")
