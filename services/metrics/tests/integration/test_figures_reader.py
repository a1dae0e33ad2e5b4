"""The figures reader follows what processors commit in the metrics database.

It reads the revision of each partition and the records written since in one snapshot, so
it never sees half a batch; a database rebuilt under it (revisions back to nothing) makes it
read everything again rather than keep figures nobody holds any more.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from eventkit.testing import DatabaseFactory, wait_for
from jingmin_metrics.adapters.figures_reader import FiguresReader
from jingmin_metrics.figures import snapshot
from jingmin_metrics.service import SERVICE
from support import store_figures

pytestmark = pytest.mark.integration

CELLS = {("cases.received", ("330602001", "call_110", "alarm", "urban")): 1}


def _records(days: range, facts: int) -> list[tuple[str, bytes | None]]:
    out: list[tuple[str, bytes | None]] = [
        (
            snapshot.chunk_key(0, "330602", f"2026-11-{day:02d}"),
            snapshot.encode_chunk(0, 0, "330602", f"2026-11-{day:02d}", CELLS),
        )
        for day in days
    ]
    out.append((snapshot.status_key(0), snapshot.encode_status(0, 0, facts, 5, 0.0)))
    return out


async def test_the_reader_follows_commits_and_reads_a_rebuilt_database_again(
    fresh_database: DatabaseFactory,
) -> None:
    dsn = await fresh_database([SERVICE.migrations])
    await store_figures(dsn, _records(range(1, 6), facts=5))
    view = await FiguresReader(dsn).catch_up()
    assert view.status[0]["facts"] == 5 and len(view.chunks) == 5

    reader = FiguresReader(dsn, interval=0.05)
    stop = asyncio.Event()
    following = asyncio.create_task(reader.run(stop))
    try:
        await asyncio.wait_for(reader.caught_up.wait(), 20)
        # A later commit changes one day and removes another (an emptied chunk).
        await store_figures(
            dsn,
            [
                *_records(range(6, 7), facts=9),
                (snapshot.chunk_key(0, "330602", "2026-11-01"), None),
            ],
        )
        await wait_for(lambda: reader.view.status[0]["facts"] == 9, timeout=20)
        assert len(reader.view.chunks) == 5
        # The database rebuilt: nothing is left, then a first commit again.
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("TRUNCATE metrics_chunks, metrics_owners")
        finally:
            await conn.close()
        await store_figures(dsn, _records(range(1, 2), facts=1))
        await wait_for(lambda: reader.view.status.get(0, {}).get("facts") == 1, timeout=20)
        assert len(reader.view.chunks) == 1
    finally:
        stop.set()
        await following
