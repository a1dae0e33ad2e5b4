"""Follows the figure records in the metrics database into a `SnapshotView`.

The processors write a partition's changed figure records with the batch that changed them,
stamped with the partition's revision (one more per commit, under its owner row, so in
commit order). A reader keeps the revision it saw per partition and, in one repeatable-read
snapshot, reads the revisions and the records written since: never half a batch, never a
record skipped by a transaction still in flight. Stateless: any number of readers (exporter,
API, daily publisher, oracle) can run, and one that restarts rebuilds the same view. A
revision that went back means the database was rebuilt: the view is read again from scratch.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from jingmin_metrics.adapters.state_store import ITEMS
from jingmin_metrics.figures.snapshot import SnapshotView

log = logging.getLogger(__name__)


class FiguresReader:
    def __init__(self, dsn: str, interval: float = 0.25) -> None:
        self.dsn = dsn
        self.interval = interval
        self.view = SnapshotView()
        self.caught_up = asyncio.Event()
        self.last_record_at = 0.0
        self._revs: dict[int, int] = {}

    async def catch_up(self, timeout: float = 30.0) -> SnapshotView:  # noqa: ASYNC109
        """Read every figure record once (for one-shot readers such as the oracle)."""
        conn = await asyncpg.connect(self.dsn, timeout=timeout)
        try:
            await self.poll(conn)
        finally:
            await conn.close()
        self.caught_up.set()
        return self.view

    async def poll(self, conn: asyncpg.Connection) -> int:
        """Apply the records written since the last poll; how many."""
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            revs = {
                r["partition"]: r["rev"]
                for r in await conn.fetch(
                    "SELECT partition, rev FROM metrics_owners WHERE role = $1", ITEMS
                )
            }
            if any(revs.get(p, 0) < rev for p, rev in self._revs.items()):
                log.warning("figure revisions went back (metrics rebuilt); reading them again")
                self.view.reset()
                self._revs = {}
            changed = {
                p: self._revs.get(p, 0) for p, rev in revs.items() if rev != self._revs.get(p)
            }
            rows = []
            if changed:
                rows = await conn.fetch(
                    """SELECT c.key, c.value FROM metrics_chunks c
                       JOIN unnest($1::int[], $2::bigint[]) AS u(partition, seen)
                         ON c.partition = u.partition AND c.rev > u.seen
                       ORDER BY c.partition, c.rev, c.key""",
                    list(changed),
                    list(changed.values()),
                )
        for row in rows:
            value = row["value"]
            self.view.accept(row["key"], None if value is None else bytes(value))
        self._revs = revs
        if rows:
            self.last_record_at = time.time()
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the records until `stop`; database trouble restarts the reading."""
        while not stop.is_set():
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10)
                try:
                    while not stop.is_set():
                        await self.poll(conn)
                        self.caught_up.set()
                        try:
                            await asyncio.wait_for(stop.wait(), self.interval)
                        except TimeoutError:
                            pass
                finally:
                    await conn.close()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("figures reader: %s: %s; retrying", type(exc).__name__, exc)
                try:
                    await asyncio.wait_for(stop.wait(), 2.0)
                except TimeoutError:
                    pass
