"""Processors apply events in batches (`stream/batch.py`); a batch open when its worker is
killed with -9, or when a rebalance takes its partitions away, must lose nothing and count
nothing twice. Batches here stay open for seconds, so every kill and every rebalance of
the test lands while one is open (real processes, a real broker, the SQL oracle)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from eventkit.testing import DatabaseFactory, wait_for
from jingmin_metrics.oracle.verify import verify, verify_once
from jingmin_sim.api import DevTokens, RequestLog
from jingmin_sim.simulate import Config, simulate
from metricskit import ProcessorProcess, platform

pytestmark = pytest.mark.integration

# Batches that close only after 3 s (or 100,000 events): always open while events flow.
LONG_BATCHES = {"METRICS_BATCH_SIZE": "100000", "METRICS_BATCH_SECONDS": "3"}


def _applied(proc: ProcessorProcess) -> int:
    dump = proc.home / f"{proc.name}.dump.json"
    if not dump.exists():
        return 0
    try:
        data = json.loads(dump.read_text())
    except ValueError:
        return 0
    return sum(int(p["facts"]) for p in data["partitions"].values())


async def test_kill_9_and_rebalance_mid_batch_lose_and_double_count_nothing(
    fresh_database: DatabaseFactory, tmp_path: Path, metrics_broker: str
) -> None:
    app_id = f"metrics-batches-{uuid.uuid4().hex[:8]}"

    def start(name: str) -> ProcessorProcess:
        return ProcessorProcess(metrics_broker, app_id, tmp_path, name, env=LONG_BATCHES).start()

    async with platform(fresh_database, tmp_path, metrics_broker) as p:
        config = Config(
            seed="metrics-batches",
            bureaus=1,
            stations=2,
            days=0.5,
            rate=2.0,
            concurrency=8,
            discover_timeout=20.0,
            poll_interval=0.05,
            progress=False,
        )
        result = await simulate(config, p.clients, DevTokens(p.settings), log=RequestLog())
        assert result.stats.error_count == 0
        await wait_for(lambda: _drained(p), timeout=60, message="relays did not drain")
        # Everything twice more: a backlog the first processor is still in when it dies.
        await p.redeliver()
        await p.redeliver()
        first = start("first")
        procs = [first]
        try:
            await wait_for(
                lambda: _positive(first), timeout=120, message="the first processor applied nothing"
            )
            # A second processor joins: a rebalance while the first holds an open batch.
            procs.append(start("second"))
            await asyncio.sleep(4)
            first.kill()  # -9, a batch open: its events were neither written nor acknowledged
            procs.append(start("third"))
            await asyncio.sleep(4)
            procs[1].kill()
            lines: list[str] = []
            code = await verify(p.dsns, metrics_broker, wait=180, echo=lines.append)
            logs = "\n".join(x.tail() for x in procs)
            assert code == 0, "\n".join(lines) + "\n--- processor logs ---\n" + logs
            report = await verify_once(p.dsns, metrics_broker)
            assert report.streamed_facts == report.stored_facts > 100, report
        finally:
            for proc in procs:
                proc.stop()


async def _positive(proc: ProcessorProcess) -> bool:
    return _applied(proc) > 0


async def _drained(p: Any) -> bool:
    await p.pump()
    return await p.pending() == 0
