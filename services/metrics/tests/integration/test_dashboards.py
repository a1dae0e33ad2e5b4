"""Every Grafana panel query, variable and metrics rule evaluates on a real Prometheus that
scrapes the running exporter (fed with a snapshot on a real broker): no errors, and data."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
import yaml
from eventkit import devstack, telemetry, unitnames
from eventkit.auth import issue_token
from eventkit.settings import KernelSettings
from eventkit.testing import DatabaseFactory, unit_event, wait_for
from eventkit.topics import ensure_topics
from jingmin_metrics.service import SERVICE
from jingmin_metrics.stream import telemetry as processor_telemetry
from metricskit import prometheus_server
from support import snapshot_records, store_figures, synthetic_observations

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[4]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
# Every station of the snapshot but one is in the register: named panels show the names and
# still the station the register does not know.
UNNAMED = "330603003"
NAMED = {f"{b}{n:03d}": f"第{n}派出所 {b}" for b in ("330602", "330603") for n in (1, 2, 3)}
NAMED.pop(UNNAMED)
RULES = ROOT / "deploy" / "prometheus" / "rules" / "metrics.rules.yml"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
GRAFANA_VARS = {
    "$__rate_interval": "15s",
    "$__interval": "2s",
    "$__range": "1m",
    "$province": ".*",
    "$city": ".*",
    "$county": ".*",
    "$station": ".*",
}


def panel_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((path.stem, panel["title"], target["expr"]))
    return out


def variable_queries() -> list[tuple[str, str]]:
    out = []
    for path in DASHBOARDS:
        for var in json.loads(path.read_text())["templating"]["list"]:
            out.append((path.stem, var["query"]["query"]))
    return out


def _grafana(expr: str) -> str:
    for name in sorted(GRAFANA_VARS, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARS[name])
    return expr


def test_every_dashboard_has_its_panels_and_parses(tmp_path: Path) -> None:
    assert {p.stem for p in DASHBOARDS} == {
        "commander-overview",
        "station-drilldown",
        "complaints-supervision",
        "timeliness",
        "equity",
        "visits",
        "platform-health",
    }
    queries = panel_queries()
    assert len(queries) >= 60
    if not Path(PROMTOOL).exists():
        pytest.skip("promtool not installed (apt-get install prometheus)")
    # promtool parses every expression as a recording rule: a syntax error fails here.
    records = [
        {"record": f"panel:q{i}", "expr": _grafana(expr)}
        for i, (_board, _title, expr) in enumerate(queries)
    ]
    rules = {"groups": [{"name": "panels", "rules": records}]}
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
async def exporter(
    tmp_path: Path, fresh_database: DatabaseFactory, metrics_broker: str
) -> AsyncIterator[str]:
    """The metrics API process serving a two-bureau snapshot, on a real port."""
    from jingmin_metrics.entrypoints.app import create_app

    await ensure_topics(metrics_broker, devstack.service_topics(SERVICE))
    dsn = await fresh_database([SERVICE.migrations])
    now = datetime.now(UTC)
    await store_figures(dsn, snapshot_records(synthetic_observations(["330602", "330603"], 3, now)))
    conn = await asyncpg.connect(dsn)
    try:
        for code, name in NAMED.items():
            await unitnames.apply(conn, unit_event("Registered", code, 1, name))
    finally:
        await conn.close()
    settings = KernelSettings(
        jingmin_home=tmp_path,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        kafka_bootstrap_servers=metrics_broker,
    )
    app = create_app(settings, dsn=dsn)
    port = devstack.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started, timeout=30)
        await wait_for(lambda: app.state.reader.caught_up.is_set(), timeout=30)
        # The platform-health panels read the kernel's and the processors' metrics: give them
        # the values a running stack has (this process's registry is /metrics/process).
        telemetry.OUTBOX_PENDING.labels("intake").set(3)
        telemetry.OUTBOX_OLDEST_PENDING_SECONDS.labels("intake").set(0.4)
        telemetry.CONSUMER_LAG.labels("visits", "visits.callbacks.from-intake").set(0)
        telemetry.CONSUMER_PROCESSED.labels(
            "visits", "visits.callbacks.from-intake", "applied"
        ).inc()
        processor_telemetry.FACTS.labels("applied").inc(5)
        processor_telemetry.REBUILDS.inc()
        token = issue_token(settings, subject="c", roles=["commander"], scopes=["330602"])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            r = await client.get("/v1/figures", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def prometheus(tmp_path: Path, exporter: str) -> AsyncIterator[str]:
    if not Path(PROMETHEUS).exists():
        pytest.skip("prometheus not installed (apt-get install prometheus)")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "jingmin-metrics-exporter", "static_configs": [{"targets": [exporter]}]},
            {"job_name": "jingmin-api", "metrics_path": "/metrics/process",
             "static_configs": [{"targets": [exporter]}]},
        ],
    }  # fmt: skip
    async with prometheus_server(tmp_path, config) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:

            async def scraped() -> bool:
                try:
                    r = await client.get(
                        "/api/v1/query", params={"query": "count_over_time(up[1m])"}
                    )
                except httpx.HTTPError:
                    return False
                if r.status_code != 200:
                    return False  # still starting ("Service Unavailable" in plain text)
                result = r.json().get("data", {}).get("result", [])
                # Both targets up, each scraped several times (rate() needs two samples).
                return len(result) == 2 and all(float(s["value"][1]) >= 5 for s in result)

            await wait_for(scraped, timeout=60, interval=0.5)
        yield base


async def _query(client: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/query", params={"query": expr})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def test_every_panel_variable_and_rule_returns_data(prometheus: str) -> None:
    async with httpx.AsyncClient(base_url=prometheus, timeout=10) as client:
        empty = []
        named = 0
        for board, title, expr in panel_queries():
            if " offset 30d" in expr:
                # A change from 30 days before (the league table): this Prometheus holds
                # seconds of history, so it is rightly empty here; it still must parse.
                await _query(client, _grafana(expr))
                continue
            result = await _query(client, _grafana(expr))
            if not result:
                empty.append(f"{board} / {title}: {expr}")
            if "jingmin_unit_info" in expr:
                # A panel that shows names: each known station by its register name, and
                # the unknown one still there, by its code.
                named += 1
                shown = {s["metric"]["station"]: s["metric"].get("name") for s in result}
                assert shown == {**NAMED, UNNAMED: None}, f"{board} / {title}: {shown}"
        assert not empty, "panels without data:\n" + "\n".join(empty)
        assert named >= 4, "the station board shows no names"

        for board, query in variable_queries():
            match = re.fullmatch(r"label_values\((.*), (\w+)\)", query)
            assert match, query
            series, label = _grafana(match[1]), match[2]
            r = await client.get(f"/api/v1/label/{label}/values", params={"match[]": series})
            assert r.json()["data"], f"{board}: variable query {query} has no values"

        rules = yaml.safe_load(RULES.read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                result = await _query(client, rule["expr"])
                if "record" in rule:
                    assert result, f"recording rule {rule['record']} has no data"
        r = await client.get("/api/v1/rules")
        health = [rule.get("health") for g in r.json()["data"]["groups"] for rule in g["rules"]]
        assert health and "err" not in health
