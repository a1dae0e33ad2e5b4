"""The figures check end to end: a small simulation through the real APIs and relays, a real
faust processor, the metrics API in process; the check must find the figures agree."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from eventkit.testing import DatabaseFactory, wait_for
from jingmin_metrics.simcheck import check_simulation
from jingmin_sim.api import DevTokens, RequestLog
from jingmin_sim.checks import CheckContext
from jingmin_sim.geography import pick_bureaus
from jingmin_sim.simulate import Config, simulate
from jingmin_sim.windows import fixed_window_end
from metricskit import ProcessorProcess, platform

pytestmark = pytest.mark.integration


# 12:00 Beijing on Thursday 2026-11-19, a working day: a fixed window, so every run
# simulates the same stories whatever day the suite runs (fixed_window_end: unless the
# clock reads earlier than that).
THURSDAY_NOON = fixed_window_end(datetime(2026, 11, 19, 4, 0, tzinfo=UTC), 1.5)


async def test_the_figures_check_passes_against_real_processors(
    fresh_database: DatabaseFactory, tmp_path: Path, metrics_broker: str
) -> None:
    from jingmin_metrics.entrypoints.app import create_app

    config = Config(
        seed="simcheck",
        bureaus=1,
        stations=1,
        days=1.5,  # from Wednesday 00:00: callbacks (a day after resolution) happen too
        rate=1.0,
        end=THURSDAY_NOON,
        concurrency=8,
        discover_timeout=15.0,
        poll_interval=0.05,
        progress=False,
    )
    app_id = f"simcheck-{uuid.uuid4().hex[:8]}"
    async with platform(fresh_database, tmp_path, metrics_broker) as p:
        proc = ProcessorProcess(metrics_broker, app_id, tmp_path, "simcheck").start()
        try:
            tokens = DevTokens(p.settings)
            result = await simulate(config, p.clients, tokens, log=RequestLog())
            assert result.stats.error_count == 0
            assert result.tallies["cases"] > 20

            async def drained() -> bool:
                await p.pump()
                return await p.pending() == 0

            await wait_for(drained, timeout=60, message="relays did not drain")
            app = create_app(p.settings, dsn=p.metrics_dsn)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://m.test") as m:
                    context = CheckContext(
                        bureaus=tuple(pick_bureaus(config.bureaus, config.bureau_codes)),
                        tokens=tokens,
                    )
                    outcome = await check_simulation(
                        result, {**p.clients, "metrics": m}, context=context, settle=3, wait=90
                    )
            print(outcome["detail"])
            assert outcome["status"] == "pass", outcome["detail"] + "\n" + proc.tail()
            rows = {r["figure"]: r for r in outcome["rows"]}
            assert rows["cases received"]["verdict"] == "ok"
            assert rows["cases received"]["platform"]["numerator"] > 20
            assert rows["callback contact rate"]["simulated"]["denominator"] > 0
            assert rows["satisfaction"]["verdict"] in ("ok", "explained")
        finally:
            proc.stop()
