"""Sweeper loop: overdue facts for complaints and orders nobody acted on, once per breach.

Each breach is decided from the item's own history (which remembers earlier breaches and
escalations) and appended with optimistic concurrency, so it is recorded exactly once, also
across restarts and with several sweepers: a second sweeper's append of the same version
fails, and a restarted one finds the breach already in the history.
"""

from __future__ import annotations

import logging

from eventkit.chain import ChainedEventStore, chain_key
from eventkit.personal import Vault
from eventkit.worker import WorkerContext

from jingmin_complaints.adapters import read_model
from jingmin_complaints.application.handlers import Commands
from jingmin_complaints.domain.complaint import Complaint
from jingmin_complaints.domain.policy import ComplaintPolicy
from jingmin_complaints.domain.supervision import Order

log = logging.getLogger(__name__)


async def sweep_once(commands: Commands, *, limit: int = 500) -> int:
    """One pass over due complaint deadlines and orders; returns how many facts were recorded."""
    grace = ComplaintPolicy().sweep_grace_seconds
    now = commands.clock()
    async with commands.store.pool.acquire() as conn:
        complaints = await read_model.complaints_due(conn, now, grace, limit)
        orders = await read_model.orders_due(conn, now, grace, limit)
    recorded = 0
    for complaint_id, item_grace in complaints:
        recorded += await commands.sweep(Complaint, complaint_id, item_grace)
    for order_id, item_grace in orders:
        recorded += await commands.sweep(Order, order_id, item_grace)
    return recorded


async def run(ctx: WorkerContext, interval: float = 10.0) -> None:
    store = ChainedEventStore(ctx.pool, chain_key(ctx.settings))
    commands = Commands(store, Vault(ctx.pool, ctx.settings))
    await ctx.repeat(lambda: sweep_once(commands), interval, "complaints and orders sweep")
