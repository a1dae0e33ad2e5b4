"""`jingmin report` on a simulated month: the simulator runs a month of a county's work
through the real services, relays, Kafka and processors (and registers its stations by
name, as a bureau admin would); the report's PDF names every station in Chinese and holds
the JSON API's figures for the same scope and month, and the workbook has the same numbers.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from eventkit.auth import issue_token
from eventkit.testing import DatabaseFactory, wait_for
from jingmin_metrics.oracle.verify import verify
from jingmin_metrics.report import cells
from jingmin_metrics.report.cli import produce
from jingmin_metrics.report.league import HEADLINES, month_bounds, value_of
from jingmin_sim.api import DevTokens, RequestLog
from jingmin_sim.model import TZ
from jingmin_sim.simulate import Config, simulate
from metricskit import ProcessorProcess, platform
from openpyxl import load_workbook
from support import figures_api

pytestmark = pytest.mark.integration

COUNTY = "330602"
# November 2026, the whole Beijing month. On a clock that reads earlier than a day after it
# (a wrong clock, a suite run with its date shifted), the latest whole month before then.
REFERENCE_END = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)


def month_window(now: datetime | None = None) -> tuple[str, datetime, datetime]:
    """(YYYY-MM, start, end) of the month simulated: a whole Beijing month."""
    latest = (now or datetime.now(UTC)) - timedelta(days=1)
    end = REFERENCE_END
    if end > latest:
        local = latest.astimezone(TZ)
        end = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    last_day = (end - timedelta(seconds=1)).astimezone(TZ)
    start = last_day.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    return last_day.strftime("%Y-%m"), start, end


def test_the_month_is_november_2026_and_whole_on_an_earlier_clock() -> None:
    assert month_window(datetime(2026, 12, 7, tzinfo=UTC))[0] == "2026-11"
    month, start, end = month_window(datetime(2026, 10, 1, 12, tzinfo=UTC))
    assert month == "2026-08"
    assert (start.astimezone(TZ).day, end.astimezone(TZ).day) == (1, 1)


class RegisterNames:
    """The report's `UnitNames` over intake's GET /v1/units (an in-process ASGI app, so it
    is called on the test's event loop from the report's thread)."""

    def __init__(self, client: httpx.AsyncClient, token: str, loop: Any) -> None:
        self.client, self.token, self.loop = client, token, loop

    def names(self, scope: str) -> dict[str, str]:
        async def fetch() -> dict[str, str]:
            r = await self.client.get(
                "/v1/units", params={"scope": scope}, headers={"Authorization": self.token}
            )
            r.raise_for_status()
            return {u["code"]: u["name"] for u in r.json()["items"]}

        return asyncio.run_coroutine_threadsafe(fetch(), self.loop).result(30)


def _pdftotext(pdf: Path) -> str:
    done = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    )
    return done.stdout


async def test_report_on_a_simulated_month_holds_the_json_apis_figures_and_names(
    fresh_database: DatabaseFactory, tmp_path: Path, metrics_broker: str
) -> None:
    month, start, end = month_window()
    app_id = f"metrics-report-{uuid.uuid4().hex[:8]}"
    async with platform(fresh_database, tmp_path, metrics_broker) as p:
        proc = ProcessorProcess(metrics_broker, app_id, tmp_path, "report").start()
        try:
            config = Config(
                seed="monthly-report",
                bureau_codes=[COUNTY],
                stations=2,
                days=(end - start).total_seconds() / 86400,
                rate=0.15,
                end=end,
                concurrency=8,
                discover_timeout=20.0,
                poll_interval=0.05,
                progress=False,
            )
            result = await simulate(config, p.clients, DevTokens(p.settings), log=RequestLog())
            assert result.stats.error_count == 0

            async def drained() -> bool:
                await p.pump()
                return await p.pending() == 0

            await wait_for(drained, timeout=60, message="relays did not drain")
            lines: list[str] = []
            code = await verify(p.dsns, metrics_broker, wait=180, echo=lines.append)
            assert code == 0, "\n".join(lines) + "\n" + proc.tail()
        finally:
            proc.stop()

        admin = issue_token(p.settings, subject="a", roles=["commander"], scopes=[COUNTY])
        names = RegisterNames(p.clients["intake"], f"Bearer {admin}", asyncio.get_running_loop())
        stations = await asyncio.to_thread(names.names, COUNTY)
        assert len(stations) == 2 and all(n.endswith("派出所") for n in stations.values())

        first, last = month_bounds(month)
        async with figures_api(tmp_path, metrics_broker, p.metrics_dsn) as (c, settings):
            token = issue_token(settings, subject="u", roles=["commander"], scopes=[COUNTY])
            api = {}
            for code in [*stations, COUNTY]:
                r = await c.get(
                    "/v1/figures",
                    params={"scope": code, "from": first, "to": last},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert r.status_code == 200, r.text
                api[code] = r.json()["figures"]
        # A month of two stations: enough answers for the headline to show.
        assert api[COUNTY]["callbacks"]["satisfaction"]["denominator"] >= 30

        pdf = await asyncio.to_thread(produce, p.metrics_dsn, COUNTY, month, "pdf", names)
        xlsx = await asyncio.to_thread(produce, p.metrics_dsn, COUNTY, month, "xlsx", names)
    (tmp_path / "r.pdf").write_bytes(pdf)
    text = await asyncio.to_thread(_pdftotext, tmp_path / "r.pdf")
    assert all(name in text for name in stations.values()), text[:2000]
    workbook = load_workbook(io.BytesIO(xlsx))
    shown_values = 0
    for h in HEADLINES:
        sheet = {row[1]: row for row in workbook[h.label].iter_rows(min_row=3, values_only=True)}
        # The county office, named only on complaints, has no headline n: no row of dashes.
        assert set(sheet) == {*stations, COUNTY}, sorted(sheet)
        for code, name in {**stations, COUNTY: "越城区"}.items():
            # The JSON API's figure, with the disclosure rule applied as anything printed.
            want = value_of(api[code], h)
            row = sheet[code]
            assert row[0] == name
            if want.shown is None:
                assert row[2] == cells.DASH, (code, h.key, want)
                continue
            assert row[2] == want.raw, (code, h.key)
            shown = cells.shown(h, want)
            assert any(name in line and shown in line for line in text.splitlines()), (
                name,
                h.key,
                shown,
            )
            shown_values += 1
    assert shown_values >= 6, "the month is a page of dashes"
