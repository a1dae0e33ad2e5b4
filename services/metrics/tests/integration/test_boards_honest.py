# The tables of panels and their JSON counterparts read best one to a line.
# ruff: noqa: E501
"""Honest at every scope (issue 17): a simulated week through the real services, processors
and exporter into a real Prometheus; every board panel, recording rule and alert evaluated
there for a county and for its city, and each figure equal to the JSON API's for the same
scope and period. A city is pooled (sum of numerators / sum of denominators), never an
average of its counties' ratios."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from eventkit import devstack
from eventkit.auth import issue_token
from eventkit.testing import DatabaseFactory, wait_for
from jingmin_metrics.domain.clock import OFFSET
from jingmin_metrics.oracle.verify import verify, verify_once
from jingmin_sim.api import DevTokens, RequestLog
from jingmin_sim.simulate import Config, simulate
from jingmin_sim.windows import recent_window_end
from metricskit import (
    PROMETHEUS,
    Platform,
    ProcessorProcess,
    platform,
    prometheus_server,
    record_survey_wave,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[4]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))

# Two counties of 绍兴 (3306) with clearly different volumes: 越城区 with one station at half
# the base rate, 柯桥区 with three at 1.5 times it.
CITY, SMALL, LARGE = "3306", "330602", "330603"
VOLUMES = {SMALL: (1, 0.4), LARGE: (3, 0.6)}  # (stations, rate)
# A week ending 18:00 Beijing on a Friday of working days (2026-11-20 is one), moved by whole
# weeks to the latest such Friday at least a day back: the exporter's ratios are rolling 7
# and 30 day windows ending now, and the week must lie inside them whatever the date.
REFERENCE_END = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
END = recent_window_end(REFERENCE_END, 7)
REL = 1e-9  # float rounding only

# (numerator, denominator) of a ratio, or (count, None) for a volume.
Value = tuple[float, float | None]


def _rate(r: dict[str, Any], scale: float = 1.0) -> Value:
    return (scale * r["numerator"], r["denominator"])


def _n(x: float) -> Value:
    return (x, None)


class Json:
    """The JSON API's answers for one scope (a county or the city), fetched once each."""

    def __init__(self, client: httpx.AsyncClient, token: str, scope: str, today: date) -> None:
        self.client, self.token, self.scope, self.today = client, token, scope, today
        self.answers: dict[tuple[str, str, str], Any] = {}

    def period(self, name: str) -> tuple[str, str]:
        # "all": counters and histograms are totals over every event time; the API's
        # longest period (400 days) holds the whole simulated week.
        back = {"all": 399, "30d": 29, "7d": 6}[name]
        return (self.today - timedelta(days=back)).isoformat(), self.today.isoformat()

    async def get(self, path: str, period: str, scope: str | None = None) -> Any:
        scope = scope or self.scope
        key = (path, period, scope)
        if key not in self.answers:
            first, last = self.period(period)
            params = {"scope": scope, "from": first, "to": last}
            if path == "breakdown":
                params["dimension"] = "station"
            url = {"figures": "/v1/figures", "breakdown": "/v1/figures/breakdown"}
            r = await self.client.get(
                url.get(path, f"/v1/{path}"),
                params=params,
                headers={"Authorization": f"Bearer {self.token}"},
            )
            assert r.status_code == 200, r.text
            self.answers[key] = r.json()["figures"]
        return self.answers[key]


Getter = Callable[[Json], Any]


def summary(period: str, pick: Callable[[dict[str, Any]], Value]) -> Getter:
    async def get(j: Json) -> Value:
        return pick(await j.get("figures", period))

    return get


def per_station(period: str, pick: Callable[[dict[str, Any]], Value]) -> Getter:
    """One value per station (the panel's `station` label)."""

    async def get(j: Json) -> dict[str, Value]:
        rows = await j.get("breakdown", period)
        return {code: pick(row) for code, row in rows.items()}

    return get


def per_window(pick: Callable[[dict[str, Any]], Value]) -> Getter:
    """One value per rolling window the API can state in bureau days (7 and 30 days; the
    24-hour window starts at an hour, which the API's day periods cannot express)."""

    async def get(j: Json) -> dict[str, Value]:
        return {w: pick(await j.get("figures", w)) for w in ("7d", "30d")}

    return get


def per_county(pick: Callable[[dict[str, Any]], Value]) -> Getter:
    """One value per county of the scope (the panel's `bureau` label)."""

    async def get(j: Json) -> dict[str, Value]:
        counties = [SMALL, LARGE] if j.scope == CITY else [j.scope]
        return {c: pick(await j.get("figures", "all", c)) for c in counties}

    return get


def per_party(pick: Callable[[dict[str, Any]], Value]) -> Getter:
    """One value per party category (the panel's `party_category` label), GET /v1/equity."""

    async def get(j: Json) -> dict[str, Value]:
        groups = (await j.get("equity", "all"))["groups"]
        return {party: pick(g) for party, g in groups.items()}

    return get


def per_programme(j: Json) -> Any:
    async def get() -> dict[str, Value]:
        return {
            k: _n(v) for k, v in (await j.get("figures", "all"))["visits"]["by_programme"].items()
        }

    return get()


async def by_severity(j: Json) -> dict[str, Value]:
    figures = await j.get("figures", "all")
    return {k: _n(v) for k, v in figures["supervision"]["findings_by_severity"].items()}


async def _unknown(j: Json) -> Value:
    return _n((await j.get("equity", "all"))["complaints_party_unknown"])


async def _gap(j: Json) -> Value:
    """The gap in satisfaction between the best and worst group, a share (over 1), from
    the groups' numerators and denominators (`satisfaction_gap` is rounded to 4 places)."""
    groups = (await j.get("equity", "all"))["groups"].values()
    rates = [g["satisfaction"] for g in groups if g["satisfaction"]["denominator"]]
    shares = [r["numerator"] / r["denominator"] for r in rates]
    # The API's gap is the difference of its rounded rates.
    assert (
        abs((await j.get("equity", "all"))["satisfaction_gap"] - (max(shares) - min(shares)))
        <= 1e-4
    )
    return (max(shares) - min(shares), 1)


def _survey(pick: Callable[[dict[str, Any]], Value]) -> Getter:
    """Per county, a figure of its latest survey wave (the API's `survey.latest`, pooled over
    the county's stations); (0, 0) or (0, None) when the county has none, as no series."""

    def of(f: dict[str, Any]) -> Value:
        s = f["survey"]
        block = next((w["scope"] for w in s["waves"] if w["wave_id"] == s["latest"]), None)
        return pick(block) if block is not None else (0, 0)

    return per_county(of)


def _estimate(figure: str, part: str) -> Getter:
    def pick(block: dict[str, Any]) -> Value:
        value = block[figure]["weighted"][part]
        return (value, 1) if value is not None else (0, 0)

    return _survey(pick)


def _respondents(figure: str) -> Getter:
    def of(f: dict[str, Any]) -> Value:
        s = f["survey"]
        block = next((w["scope"] for w in s["waves"] if w["wave_id"] == s["latest"]), None)
        return _n(block[figure]["weighted"]["n"] if block is not None else 0)

    return per_county(of)


def _response(rate: str) -> Getter:
    def pick(block: dict[str, Any]) -> Value:
        value = block["response_rates"][rate]
        return (value, 1) if value is not None else (0, 0)

    return _survey(pick)


# Figures that are no sum over counties (the city's gap is its own groups' max − min).
NOT_ADDITIVE = {("equity", "满意率差距", "A")}


IN, CB, CO, SU, V = "intake", "callbacks", "complaints", "supervision", "visits"
SATISFACTION = per_window(lambda f: _rate(f[CB]["satisfaction"]))

# Every stat figure a board shows, keyed by (board, the title's Chinese words, refId): the
# JSON API's counterpart for the same scope and period.
COUNTERPARTS: dict[tuple[str, str, str], tuple[Getter, str]] = {
    ("commander-overview", "累计回访答复量", "A"): (summary("all", lambda f: _n(f[CB]["satisfaction"]["denominator"])), ""),
    ("commander-overview", "满意率", "A"): (summary("30d", lambda f: _rate(f[CB]["satisfaction"])), ""),
    ("commander-overview", "满意率", "B"): (summary("30d", lambda f: _n(f[CB]["satisfaction"]["denominator"])), ""),
    ("commander-overview", "满意率滚动窗口", "A"): (SATISFACTION, "window"),
    ("commander-overview", "安全感", "A"): (summary("all", lambda f: _rate(f[CB]["security"])), ""),
    ("commander-overview", "回访率与联系率", "A"): (summary("all", lambda f: _rate(f[CB]["coverage"])), ""),
    ("commander-overview", "回访率与联系率", "B"): (summary("all", lambda f: _rate(f[CB]["contact"])), ""),
    ("commander-overview", "按时办结率", "A"): (summary("all", lambda f: _rate(f[IN]["on_time"])), ""),
    ("commander-overview", "超期未结警情", "A"): (summary("all", lambda f: _n(f[IN]["open_overdue"])), ""),
    ("commander-overview", "60秒内派警率", "A"): (summary("all", lambda f: _rate(f[IN]["dispatch_within_60s"])), ""),
    ("commander-overview", "按时到场率", "A"): (summary("all", lambda f: _rate(f[IN]["arrival_on_target"])), ""),
    ("commander-overview", "调查满意度", "A"): (_estimate("satisfaction", "p"), "bureau"),
    ("commander-overview", "调查满意度", "B"): (_estimate("satisfaction", "low"), "bureau"),
    ("commander-overview", "调查满意度", "C"): (_estimate("satisfaction", "high"), "bureau"),
    ("commander-overview", "调查满意度", "D"): (_respondents("satisfaction"), "bureau"),
    ("commander-overview", "调查安全感", "A"): (_estimate("security", "p"), "bureau"),
    ("commander-overview", "调查安全感", "B"): (_estimate("security", "low"), "bureau"),
    ("commander-overview", "调查安全感", "C"): (_estimate("security", "high"), "bureau"),
    ("commander-overview", "调查安全感", "D"): (_respondents("security"), "bureau"),
    ("commander-overview", "回访满意率", "A"): (summary("30d", lambda f: _rate(f[CB]["satisfaction"])), ""),
    ("commander-overview", "回访满意率", "B"): (summary("30d", lambda f: _n(f[CB]["satisfaction"]["denominator"])), ""),
    ("commander-overview", "调查应答率", "A"): (_response("rr1"), "bureau"),
    ("commander-overview", "调查应答率", "B"): (_response("rr3"), "bureau"),
    ("commander-overview", "累计投诉受理量", "A"): (summary("all", lambda f: _n(f[CO]["received"])), ""),
    ("commander-overview", "千件警情投诉数", "A"): (summary("all", lambda f: (1000 * f[CO]["received"], f[IN]["received"])), ""),
    ("commander-overview", "投诉属实率", "A"): (summary("all", lambda f: _rate(f[CO]["substantiation"])), ""),
    ("commander-overview", "累计督察令下发量", "A"): (summary("all", lambda f: _n(f[SU]["issued"])), ""),
    ("commander-overview", "超期未结督察令", "A"): (summary("all", lambda f: _n(f[SU]["open_overdue"])), ""),
    ("commander-overview", "走访量与拒访率", "A"): (summary("all", lambda f: _n(f[V]["attempted"])), ""),
    ("commander-overview", "走访量与拒访率", "B"): (summary("all", lambda f: _rate(f[V]["refusal"])), ""),
    ("station-drilldown", "各派出所累计受理量", "A"): (per_station("all", lambda r: _n(r["received"])), "station"),
    ("station-drilldown", "各派出所满意率", "A"): (per_station("30d", lambda r: _rate(r["satisfaction"])), "station"),
    # The trend's newest point is the bar's figure.
    ("station-drilldown", "各派出所满意率趋势", "A"): (per_station("30d", lambda r: _rate(r["satisfaction"])), "station"),
    ("complaints-supervision", "属实率", "A"): (summary("all", lambda f: _rate(f[CO]["substantiation"])), ""),
    ("complaints-supervision", "办结量", "A"): (summary("all", lambda f: _n(f[CO]["substantiation"]["denominator"])), ""),
    ("complaints-supervision", "按时受理告知率", "A"): (summary("all", lambda f: _rate(f[CO]["acknowledged_on_time"])), ""),
    ("complaints-supervision", "按时办结率", "A"): (summary("all", lambda f: _rate(f[CO]["concluded_on_time"])), ""),
    ("complaints-supervision", "应告知/应办结量", "A"): (summary("all", lambda f: _n(f[CO]["acknowledged_on_time"]["denominator"])), ""),
    ("complaints-supervision", "应告知/应办结量", "B"): (summary("all", lambda f: _n(f[CO]["concluded_on_time"]["denominator"])), ""),
    ("complaints-supervision", "超期未结投诉", "A"): (summary("all", lambda f: _n(f[CO]["open_overdue"])), ""),
    ("complaints-supervision", "超期未结督察令", "A"): (per_county(lambda f: _n(f[SU]["open_overdue"])), "bureau"),
    ("complaints-supervision", "整改后满意率", "A"): (summary("all", lambda f: _rate(f[CB]["service_recovery"])), ""),
    ("complaints-supervision", "整改回访答复量", "A"): (summary("all", lambda f: _n(f[CB]["service_recovery"]["denominator"])), ""),
    ("timeliness", "派警时长分布", "B"): (summary("all", lambda f: _rate(f[IN]["dispatch_within_60s"])), ""),
    ("timeliness", "派警量", "A"): (summary("all", lambda f: _n(f[IN]["dispatch_latency"]["count"])), ""),
    ("timeliness", "按本局标准到场率", "A"): (summary("all", lambda f: _rate(f[IN]["arrival_on_target"])), ""),
    ("timeliness", "按本局标准到场率", "B"): (summary("all", lambda f: _n(f[IN]["arrival_latency"]["count"])), ""),
    ("timeliness", "按时率与超期未结", "A"): (summary("all", lambda f: _rate(f[IN]["on_time"])), ""),
    ("timeliness", "按时率与超期未结", "B"): (summary("all", lambda f: _n(f[IN]["open_overdue"])), ""),
    ("timeliness", "一次办结率", "A"): (summary("all", lambda f: _rate(f[IN]["one_visit"])), ""),
    ("timeliness", "一次办结率", "B"): (summary("all", lambda f: _n(f[IN]["one_visit"]["denominator"])), ""),
    ("timeliness", "一次办结率", "C"): (summary("all", lambda f: _n(f[IN]["services_unrecorded"])), ""),
    ("timeliness", "移交率", "A"): (summary("all", lambda f: _rate(f[IN]["referral"])), ""),
    ("complaints-supervision", "督办按时反馈率", "A"): (summary("all", lambda f: _rate(f[SU]["reported_on_time"])), ""),
    ("complaints-supervision", "督办按时反馈率", "B"): (summary("all", lambda f: _n(f[SU]["reported_on_time"]["denominator"])), ""),
    ("complaints-supervision", "督办升级", "A"): (summary("all", lambda f: _n(f[SU]["escalations"])), ""),
    ("complaints-supervision", "督察次数", "A"): (summary("all", lambda f: _n(f[SU]["inspections"])), ""),
    ("complaints-supervision", "督察发现问题", "A"): (by_severity, "severity"),
    ("complaints-supervision", "限期整改令", "A"): (summary("all", lambda f: _n(f[SU]["rectification_orders"])), ""),
    ("complaints-supervision", "问责", "A"): (summary("all", lambda f: _n(f[SU]["accountability_actions"])), ""),
    ("station-drilldown", "满意率排名", "A"): (per_station("30d", lambda r: _rate(r["satisfaction"])), "station"),
    ("station-drilldown", "满意率排名", "B"): (per_station("30d", lambda r: _n(r["satisfaction"]["denominator"])), "station"),
    ("equity", "各群体满意率", "A"): (per_party(lambda g: _rate(g["satisfaction"])), "party_category"),
    ("equity", "各群体回访答复量", "A"): (per_party(lambda g: _n(g["satisfaction"]["denominator"])), "party_category"),
    ("equity", "各群体千件警情投诉数", "A"): (per_party(lambda g: (1000 * g["complaints"], g["cases"])), "party_category"),
    ("equity", "各群体受理量与投诉量", "A"): (per_party(lambda g: _n(g["cases"])), "party_category"),
    ("equity", "各群体受理量与投诉量", "B"): (per_party(lambda g: _n(g["complaints"])), "party_category"),
    ("equity", "满意率差距", "A"): (_gap, ""),
    ("equity", "投诉当事人类别不明", "A"): (_unknown, ""),
    ("visits", "各项目走访完成量", "A"): (per_programme, "programme"),
    ("visits", "走访量与拒访率", "A"): (summary("all", lambda f: _n(f[V]["attempted"])), ""),
    ("visits", "走访量与拒访率", "B"): (summary("all", lambda f: _rate(f[V]["refusal"])), ""),
    ("visits", "警民互动活动", "A"): (summary("all", lambda f: _n(f["engagement"]["events"])), ""),
    ("visits", "参与群众", "A"): (summary("all", lambda f: _n(f["engagement"]["participants"])), ""),
}  # fmt: skip

# Targets evaluated (they must parse) with no JSON figure to equal, and why.
_RATE = "a rate of arrival at the exporter per scrape interval (when the figures grew), not an event-time figure"
_QUANTILE = "histogram_quantile interpolates inside Prometheus buckets; the API states the fine bucket's upper bound (pNN_seconds_at_most)"
_SHARE = "the API states only the 60 s dispatch share (dispatch_within_60s); other bounds are Prometheus histogram buckets alone"
_PLATFORM = "pipeline telemetry (latency, backlog, lag, dead letters, exporter state): no figure of the JSON API"
NO_COUNTERPART: dict[tuple[str, str], str] = {
    ("commander-overview", "按满意度分答复量"): _RATE,
    ("commander-overview", "按类型受理量"): _RATE,
    ("commander-overview", "派警时长"): _QUANTILE,
    ("station-drilldown", "各派出所受理量趋势"): _RATE,
    ("complaints-supervision", "投诉受理量"): _RATE,
    ("complaints-supervision", "督察令下发量"): _RATE,
    ("timeliness", "派警时长"): _QUANTILE + "; the constant 60 s target line is no figure",
    # Its value (A) and n (B) are compared above.
    ("station-drilldown", "满意率排名"): "the change (C) subtracts the exporter's figure of 30 days before, which a Prometheus started minutes ago cannot hold",
    ("timeliness", "派警时长分布"): _SHARE,  # its B target (≤ 60 s) is compared above
    ("timeliness", "到场时长"): _QUANTILE,
    ("timeliness", "到场时长分布"): "the API states arrivals on the bureau's own target by area type, not shares under fixed bounds",
    ("timeliness", "办结时长"): _QUANTILE,
    ("timeliness", "1/3/7/30天内办结"): "the API states resolution p50/p90 and mean, not shares under day bounds",
    **{("platform-health", t): _PLATFORM for t in (
        "接口时延", "接口5xx占比", "待发消息", "最久待发消息", "消费积压", "死信",
        "指标处理器重平衡", "指标处理器事件", "指标导出器状态", "指标导出器事件")},
}  # fmt: skip

# Recording rules over the figures, per county: the JSON counterpart.
RECORDED: dict[str, Getter] = {
    "bureau:jingmin_satisfaction:ratio_30d": summary("30d", lambda f: _rate(f[CB]["satisfaction"])),
    "bureau:jingmin_intake_on_time:ratio": summary("all", lambda f: _rate(f[IN]["on_time"])),
    "bureau:jingmin_complaints_per_1000_cases:ratio": summary("all", lambda f: (1000 * f[CO]["received"], f[IN]["received"])),
    "bureau:jingmin_callback_coverage:ratio": summary("all", lambda f: _rate(f[CB]["coverage"])),
}  # fmt: skip
# Series a rule selects that this test's processes do not export, and why: such a rule
# is evaluated (it parses) and is legitimately empty here.
ABSENT_HERE = {
    "kafka_": "the Kafka exporter's; none scrapes the test's Tansu",
    "jingmin_outbox_failures_total": "created on a relay's first failed publish; none failed",
    "jingmin_consumer_lag_messages": "the services' consumers are fed in process "
    "(metricskit.Platform.pump), not from Kafka, so none reports a lag",
}

# Recording rules that are legitimately empty here, and why.
EMPTY_RECORDINGS = {
    "service:jingmin_http_5xx:ratio_rate5m": "no 5xx was served: the numerator has no series, "
    "so neither has the ratio (and the alert over it rightly stays quiet)",
    "topic:kafka_dead_letters:increase15m": ABSENT_HERE["kafka_"],
    "group_topic:kafka_consumergroup_lag:sum": ABSENT_HERE["kafka_"],
}


def _unit(panel: dict[str, Any], ref: str) -> str:
    """The unit Grafana shows a target's value in: the panel's, or its override by refId."""
    for override in panel["fieldConfig"].get("overrides", []):
        if override["matcher"] == {"id": "byFrameRefID", "options": ref}:
            for prop in override["properties"]:
                if prop["id"] == "unit":
                    return str(prop["value"])
    return str(panel["fieldConfig"]["defaults"].get("unit", "short"))


def _key(title: str) -> str:
    return title.split(" ", 1)[0]


def _vars(expr: str, county: str, stations: str) -> str:
    values = {
        "$__rate_interval": "1m",
        "$__interval": "15s",
        "$province": CITY[:2],
        "$city": CITY,
        "$county": county,
        "$station": stations,
    }
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    assert not re.search(r"\$\{?[a-z_]", expr), f"a variable the test does not know: {expr}"
    return expr


def _close(got: float, want: float) -> bool:
    return math.isclose(got, want, rel_tol=REL, abs_tol=1e-12)


class Prom:
    def __init__(self, client: httpx.AsyncClient, at: float) -> None:
        self.client, self.at = client, at

    async def query(self, expr: str) -> list[dict[str, Any]]:
        r = await self.client.get("/api/v1/query", params={"query": expr, "time": self.at})
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


def _compare(where: str, got: float | None, want: Value, notes: list[str]) -> str | None:
    """A mismatch's description, or None when Prometheus states the API's figure."""
    num, den = want
    if den is None:
        if got is None:
            if num == 0:
                notes.append(f"{where}: no series, and the API counts 0")
                return None
            return f"{where}: no series, the API counts {num}"
        return None if _close(got, num) else f"{where}: Prometheus {got}, the API {num}"
    if den == 0:
        if got is None or math.isnan(got):
            notes.append(f"{where}: no denominator, no figure in either")
            return None
        return f"{where}: Prometheus {got}, the API has no denominator"
    if got is None:
        return f"{where}: no series, the API {num}/{den}"
    return (
        None
        if _close(got, num / den)
        else f"{where}: Prometheus {got}, the API {num}/{den} = {num / den}"
    )


@asynccontextmanager
async def exporter(p: Platform) -> AsyncIterator[str]:
    """The metrics API process (exporter and JSON API) on a real port."""
    from jingmin_metrics.entrypoints.app import create_app

    app = create_app(p.settings, dsn=p.metrics_dsn)
    port = devstack.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started, timeout=30)
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)


def _prometheus_config(target: str, processor: str) -> dict[str, Any]:
    """Scrape the exporter, this process's kernel metrics (the APIs and relays run here) and
    the processor every second, with the project's rule files."""
    labels = {"service": "metrics"}
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(f) for f in RULE_FILES],
        "scrape_configs": [
            {"job_name": "figures", "static_configs": [
                {"targets": [target], "labels": {**labels, "process": "exporter"}}]},
            {"job_name": "process", "metrics_path": "/metrics/process", "static_configs": [
                {"targets": [target], "labels": {**labels, "process": "api"}}]},
            {"job_name": "processor", "static_configs": [
                {"targets": [processor], "labels": {**labels, "process": "stream"}}]},
        ],
    }  # fmt: skip


async def _scraped_final(client: httpx.AsyncClient, facts: int) -> float | None:
    """The time of a scrape that saw every fact applied, once Prometheus has one."""
    try:
        r = await client.get(
            "/api/v1/query", params={"query": "timestamp(jingmin_metrics_events_applied_total)"}
        )
        v = await client.get(
            "/api/v1/query", params={"query": "jingmin_metrics_events_applied_total"}
        )
    except httpx.HTTPError:
        return None
    if r.status_code != 200 or v.status_code != 200:
        return None  # still starting
    at, value = r.json()["data"]["result"], v.json()["data"]["result"]
    if len(at) == 1 and len(value) == 1 and float(value[0]["value"][1]) == facts:
        return float(at[0]["value"][1])
    return None


@pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="prometheus not installed")
async def test_every_panel_rule_and_alert_states_the_json_figure_at_county_and_city(
    fresh_database: DatabaseFactory, tmp_path: Path, metrics_broker: str
) -> None:
    started = time.monotonic()
    async with platform(fresh_database, tmp_path, metrics_broker) as p, exporter(p) as target:
        processor_port = devstack.free_port()
        proc = ProcessorProcess(
            metrics_broker, f"honest-{uuid.uuid4().hex[:8]}", tmp_path, "p",
            env={"METRICS_PROCESSOR_PORT": str(processor_port)},
        )  # fmt: skip
        proc.start()
        try:
            scrape = _prometheus_config(target, f"127.0.0.1:{processor_port}")
            async with (
                prometheus_server(tmp_path, scrape) as base,
                httpx.AsyncClient(base_url=base, timeout=10) as prom_client,
            ):
                for county, (stations, rate) in VOLUMES.items():
                    config = Config(
                        seed=f"honest-{county}", bureau_codes=[county], stations=stations,
                        days=7, rate=rate, end=END, concurrency=8, discover_timeout=20.0,
                        poll_interval=0.05, progress=False,
                    )  # fmt: skip
                    result = await simulate(
                        config, p.clients, DevTokens(p.settings), log=RequestLog()
                    )
                    assert result.stats.error_count == 0
                    # A resident survey wave per county, beside the callbacks: its panels
                    # state the county's latest wave as the JSON API does.
                    await record_survey_wave(
                        p, county, tuple(f"{county}{n:03d}" for n in range(1, stations + 1))
                    )
                print(f"simulated in {time.monotonic() - started:.0f} s")

                async def drained() -> bool:
                    await p.pump()
                    return await p.pending() == 0

                await wait_for(drained, timeout=60, message="relays did not drain")
                lines: list[str] = []
                code = await verify(p.dsns, metrics_broker, wait=120, echo=lines.append)
                assert code == 0, "\n".join(lines) + "\n" + proc.tail()
                facts = (await verify_once(p.dsns, metrics_broker)).streamed_facts
                deadline = time.monotonic() + 60
                at = None
                while at is None:
                    assert time.monotonic() < deadline, "Prometheus never scraped the final figures"
                    at = await _scraped_final(prom_client, facts)
                    if at is None:
                        await asyncio.sleep(0.25)
                print(f"converged and scraped in {time.monotonic() - started:.0f} s")
                async with httpx.AsyncClient(base_url=f"http://{target}", timeout=30) as api:
                    await _check(Prom(prom_client, at), api, p)
        finally:
            proc.stop()
    print(f"total {time.monotonic() - started:.0f} s")


async def _check(prom: Prom, api: httpx.AsyncClient, p: Platform) -> None:
    from eventkit.settings import KernelSettings

    settings: KernelSettings = p.settings
    token = issue_token(settings, subject="c", roles=["commander"], scopes=[CITY[:2]])
    # The bureau day of the scrape, not of the clock now: the exporter's rolling windows
    # ended at the scrape, and the API's periods are stated in days (explicit from / to).
    today = (datetime.fromtimestamp(prom.at, UTC) + OFFSET).date()
    scopes = {c: Json(api, token, c, today) for c in (SMALL, LARGE, CITY)}
    # The counties really differ in volume.
    small, large = [await scopes[c].get("figures", "all") for c in (SMALL, LARGE)]
    assert large[IN]["received"] >= 2 * small[IN]["received"] > 0, (small[IN], large[IN])
    # Each county has a survey wave with weighted estimates for the survey panels to state.
    assert all(
        f["survey"]["waves"][-1]["scope"]["satisfaction"]["weighted"]["n"] for f in (small, large)
    )
    # Grafana's county variable: a county, or every county of the city ("All" without an
    # allValue is the listed values as a regex).
    county_var = {SMALL: SMALL, LARGE: LARGE, CITY: f"({SMALL}|{LARGE})"}
    station_var = {}
    for scope, regex in county_var.items():
        series = f'jingmin_station_cases_received_total{{bureau=~"{regex}"}}'
        r = await prom.client.get(
            "/api/v1/label/station/values", params={"match[]": series, "time": prom.at}
        )
        station_var[scope] = "(" + "|".join(r.json()["data"]) + ")"

    mismatches: list[str] = []
    notes: list[str] = []
    compared = pooled_not_mean = 0
    seen: set[tuple[str, str, str]] = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                key = (path.stem, _key(panel["title"]), target["refId"])
                counterpart = COUNTERPARTS.get(key)
                if counterpart is None:
                    assert key[:2] in NO_COUNTERPART, f"panel {key} neither compared nor listed"
                unit = _unit(panel, target["refId"])
                values: dict[str, Value | dict[str, Value]] = {}
                for scope in (SMALL, LARGE, CITY):
                    expr = _vars(target["expr"], county_var[scope], station_var[scope])
                    result = await prom.query(expr)  # parses, or fails here
                    if counterpart is None:
                        continue
                    seen.add(key)
                    getter, by = counterpart
                    want = await getter(scopes[scope])
                    values[scope] = want
                    # A share shows as a percentage, a count or a rate per 1,000 as a number.
                    one = next(iter(want.values()), (0, None)) if isinstance(want, dict) else want
                    fraction = one[1] is not None and "千件" not in key[1]
                    if scope == SMALL and (unit == "percentunit") != fraction:
                        mismatches.append(
                            f"{key}: unit {unit} for a {'share' if fraction else 'count'}"
                        )
                    where = f"{path.stem} / {panel['title']} / {target['refId']} @ {scope}"
                    if by:
                        got = {s["metric"].get(by, ""): float(s["value"][1]) for s in result}
                        assert isinstance(want, dict)
                        for label in sorted(set(got) | set(want)):
                            if label not in want and by == "window":
                                continue  # the 24-hour window (see per_window)
                            m = _compare(f"{where} {by}={label}", got.get(label),
                                         want.get(label, (0, None)), notes)  # fmt: skip
                            mismatches += [m] if m else []
                            compared += 1
                    else:
                        assert len(result) <= 1, f"{where}: {len(result)} series for one stat"
                        got_one = float(result[0]["value"][1]) if result else None
                        assert isinstance(want, tuple)
                        m = _compare(where, got_one, want, notes)
                        mismatches += [m] if m else []
                        compared += 1
                if counterpart and not counterpart[1] and key not in NOT_ADDITIVE:
                    pooled_not_mean += _pooled(key, values, mismatches)
    assert set(COUNTERPARTS) <= seen, f"counterparts of no panel: {set(COUNTERPARTS) - seen}"
    await _rules(prom, scopes, mismatches, notes)
    print("\n".join(["legitimately empty:", *notes]))
    assert not mismatches, "boards differ from the JSON API:\n" + "\n".join(mismatches)
    assert compared > 100
    # Satisfaction at least: with counties this different, pooling is not averaging.
    assert pooled_not_mean >= 5, pooled_not_mean


def _pooled(key: tuple[str, str, str], values: dict[str, Any], mismatches: list[str]) -> int:
    """The city's figure is its counties' numerators over their denominators (never their
    mean ratio): 1 when that differs from the mean of the county ratios, else 0."""
    (sn, sd), (ln, ld), (cn, cd) = values[SMALL], values[LARGE], values[CITY]
    if cd is None:
        if not _close(cn, sn + ln):
            mismatches.append(f"{key} @ city: {cn}, not {sn} + {ln}")
        return 0
    if (cn, cd) != (sn + ln, sd + ld):
        mismatches.append(f"{key} @ city: {cn}/{cd}, not ({sn}+{ln})/({sd}+{ld})")
    if not (sd and ld) or _close(sn / sd, ln / ld):
        return 0
    return int(not _close(cn / cd, (sn / sd + ln / ld) / 2))


async def _rules(
    prom: Prom, scopes: dict[str, Json], mismatches: list[str], notes: list[str]
) -> None:
    """Every recording rule and alert of the rule files: parses, and selects series (or is
    empty for a stated reason); the figures' recorded ratios and the alerts over figures equal
    what the JSON API states for each county."""
    groups = [g for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"]]
    for group in groups:
        for rule in group["rules"]:
            name = rule.get("record") or rule["alert"]
            result = await prom.query(rule["expr"])
            for metric in sorted(
                set(re.findall(r"(?<![:\w])((?:jingmin|kafka)_\w+|up)(?![:\w])", rule["expr"]))
            ):
                present = await prom.query(f'count({{__name__="{metric}"}})')
                why = next((r for m, r in ABSENT_HERE.items() if metric.startswith(m)), None)
                if not present and why is None:
                    mismatches.append(f"rule {name}: selects no {metric} series")
                elif not present:
                    notes.append(f"rule {name}: no {metric} series ({why})")
            if name in RECORDED:
                got = {s["metric"]["bureau"]: float(s["value"][1]) for s in result}
                for county in (SMALL, LARGE):
                    want = await RECORDED[name](scopes[county])
                    m = _compare(f"rule {name} @ {county}", got.get(county), want, notes)
                    mismatches += [m] if m else []
            elif "record" in rule and not result:
                if name not in EMPTY_RECORDINGS:
                    mismatches.append(f"recording rule {name}: empty")
                notes.append(f"recording rule {name}: empty ({EMPTY_RECORDINGS.get(name)})")
            elif "alert" in rule:
                firing = {s["metric"].get("bureau", "") for s in result}
                want = await _alerting(name, scopes)
                if want is not None and firing != want:
                    mismatches.append(
                        f"alert {name}: fires for {sorted(firing)}, the API says {sorted(want)}"
                    )
                if not result:
                    notes.append(f"alert {name}: its condition does not hold")  # fmt: skip
    r = await prom.client.get("/api/v1/rules")
    health = {
        rule["name"]: rule.get("health") for g in r.json()["data"]["groups"] for rule in g["rules"]
    }
    assert health and "err" not in health.values(), health


async def _alerting(name: str, scopes: dict[str, Json]) -> set[str] | None:
    """The counties an alert over figures must select, from the JSON API (None: the alert
    is about the pipeline, no JSON figure)."""
    out = set()
    for county in (SMALL, LARGE):
        j = scopes[county]
        f = await j.get("figures", "all")
        if name == "JingminSupervisionOrdersOverdue" and f[SU]["open_overdue"] > 0:
            out.add(county)
        elif name == "JingminComplaintsOverdue" and f[CO]["open_overdue"] > 0:
            out.add(county)
        elif name == "JingminSatisfactionDrop":
            week = (await j.get("figures", "7d"))[CB]["satisfaction"]
            month = (await j.get("figures", "30d"))[CB]["satisfaction"]
            if (
                week["denominator"] >= 30
                and month["denominator"]
                and (
                    week["numerator"] / week["denominator"]
                    < month["numerator"] / month["denominator"] - 0.05
                )
            ):
                out.add(county)
        elif not name.startswith("JingminSatisfaction") and not name.endswith("Overdue"):
            return None
    return out
