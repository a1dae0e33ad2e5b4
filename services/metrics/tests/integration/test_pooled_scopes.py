"""A city's figures are pooled over its counties (sum of numerators / sum of denominators),
in the JSON API and in the board's PromQL evaluated on the exporter's own output: a county
of 10 answers must not weigh like one of 1,000 (issue 17)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from eventkit.auth import issue_token
from eventkit.settings import KernelSettings
from eventkit.testing import DatabaseFactory
from jingmin_metrics.domain.clock import local_day, parse_us
from jingmin_metrics.domain.item import Observation
from jingmin_metrics.service import SERVICE
from prometheus_client.parser import text_string_to_metric_families
from support import _dims, figures_api, snapshot_records, store_figures

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[4]
BOARD = ROOT / "deploy" / "grafana" / "dashboards" / "commander-overview.json"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
SATISFACTION_PANEL = "满意率 Satisfaction 满意+基本满意 (30 d, event time)"
# Two counties of one city (3306) with very different volumes, and one of another city.
SMALL, LARGE, ELSEWHERE = "330602", "330603", "330102"
ANSWERS = {SMALL: (5, 10), LARGE: (900, 1000), ELSEWHERE: (1, 100)}  # (satisfied, answered)
POOLED = (5 + 900) / (10 + 1000)
MEAN = (5 / 10 + 900 / 1000) / 2
# Two days back: inside every window the exporter serves, whatever the wall clock says.
AT = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)


def _observations() -> list[Observation]:
    at = parse_us(AT.isoformat())
    out = []
    for bureau, (satisfied, answered) in ANSWERS.items():
        station = f"{bureau}001"
        for value, n in (("satisfied", satisfied), ("dissatisfied", answered - satisfied)):
            dims = _dims("callback.answered", station, at, satisfaction=value,
                         trigger="case_resolved")  # fmt: skip
            out.append(Observation("callback.answered", bureau, local_day(at), dims, n))
    return out


@pytest.fixture
async def client(
    tmp_path: Path, metrics_broker: str, fresh_database: DatabaseFactory
) -> AsyncIterator[tuple[httpx.AsyncClient, KernelSettings]]:
    dsn = await fresh_database([SERVICE.migrations])
    await store_figures(dsn, snapshot_records(_observations()))
    async with figures_api(tmp_path, metrics_broker, dsn) as served:
        yield served


async def test_city_satisfaction_in_the_json_api_is_pooled(
    client: tuple[httpx.AsyncClient, KernelSettings],
) -> None:
    c, settings = client
    token = issue_token(settings, subject="u", roles=["commander"], scopes=["33"])
    day = local_day(parse_us(AT.isoformat()))
    r = await c.get("/v1/figures", params={"scope": "3306", "from": day, "to": day},
                    headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert r.status_code == 200, r.text
    satisfaction = r.json()["figures"]["callbacks"]["satisfaction"]
    assert satisfaction == {"numerator": 905, "denominator": 1010, "rate": round(POOLED, 4)}
    assert abs(satisfaction["rate"] - MEAN) > 0.15  # 0.896 against 0.7


def _promtool_case(metrics_text: str, exprs: dict[str, float]) -> dict[str, object]:
    """A `promtool test rules` case: every exported sample as a steady series, and each
    expression with the value it must evaluate to (Prometheus's own PromQL engine)."""
    series = []
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            series.append({"series": f"{sample.name}{{{labels}}}", "values": f"{sample.value}x5"})
    tests = [
        {"expr": expr, "eval_time": "2m", "exp_samples": [{"labels": "{}", "value": value}]}
        for expr, value in exprs.items()
    ]
    return {"interval": "1m", "input_series": series, "promql_expr_test": tests}


@pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool not installed")
async def test_city_satisfaction_panel_is_pooled_on_the_exporters_output(
    client: tuple[httpx.AsyncClient, KernelSettings], tmp_path: Path
) -> None:
    c, _settings = client
    metrics = (await c.get("/metrics")).text
    board = json.loads(BOARD.read_text())
    panel = next(p for p in board["panels"] if p["title"] == SATISFACTION_PANEL)
    # Grafana's "All" counties of city 3306: the county variable's values, as a regex.
    city = f"({SMALL}|{LARGE})"
    satisfaction, volume = (t["expr"].replace("$county", city) for t in panel["targets"])
    averaged = f'avg(jingmin_satisfaction_ratio{{bureau=~"{city}", window="30d"}})'
    case = _promtool_case(metrics, {satisfaction: POOLED, volume: 1010, averaged: MEAN})
    (tmp_path / "pooled.test.yml").write_text(yaml.safe_dump({"tests": [case]}))
    result = await asyncio.to_thread(
        subprocess.run, [PROMTOOL, "test", "rules", "pooled.test.yml"], cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert abs(POOLED - MEAN) > 0.15  # the old board's average was this far off
