"""`jingmin metrics-rebuild`: the runbook's rebuild step as one command, through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
from eventkit.testing import DatabaseFactory
from jingmin_metrics.adapters.state_store import StateStore
from jingmin_metrics.rebuild import STATE_TABLES
from jingmin_metrics.service import SERVICE


def _cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, METRICS_DATABASE_DSN=dsn)
    return subprocess.run(
        [sys.executable, "-m", "eventkit.cli", "metrics-rebuild", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _rows(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in STATE_TABLES}
    finally:
        await conn.close()


async def test_rebuild_forgets_the_state_only_when_confirmed(
    fresh_database: DatabaseFactory,
) -> None:
    dsn = await fresh_database([SERVICE.migrations])
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        store = StateStore(pool)
        assert await store.claim("items", 3, ["intake.case.events.v1"]) == 1
        assert await store.claim("items", 3, ["intake.case.events.v1"]) == 2
        await pool.execute(
            "INSERT INTO metrics_items (key, partition, state) VALUES ($1, 3, $2)", b"k", b"{}"
        )
        await pool.execute(
            "UPDATE metrics_positions SET next_offset = 17 WHERE topic = $1 AND partition = 3",
            "intake.case.events.v1",
        )
        await pool.execute(
            "INSERT INTO metrics_chunks (key, partition, rev, value) VALUES ('c', 3, 1, $1)", b"x"
        )
        held = await _rows(dsn)
        assert all(held.values()), held

        refused = _cli(dsn)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "--yes" in refused.stdout + refused.stderr
        assert await _rows(dsn) == held  # nothing written without the confirmation

        done = _cli(dsn, "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "metrics_items 1 rows" in done.stdout
        assert await _rows(dsn) == dict.fromkeys(STATE_TABLES, 0)
        # Started again, a processor claims from scratch and reads from offset 0.
        assert await store.claim("items", 3, ["intake.case.events.v1"]) == 1
        positions = await store.positions(3, ["intake.case.events.v1"])
        assert [p.offset for p in positions.values()] == [0]
    finally:
        await pool.close()
