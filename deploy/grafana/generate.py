# PromQL reads best unwrapped.
# ruff: noqa: E501
"""Writes the Grafana dashboards of deploy/grafana/dashboards/ (run it after editing here).

Every panel that shows a volume sits beside the quality figure it must be read with
("工作导向决定评估导向": evaluation drives behaviour). A stat is by event time, as the JSON
API states it: over the exporter's rolling windows when its title names one (30 d), "now" for open
items, else over every event time (the exporter's counters; "all time" in the title). Never `increase(...[$__range])` in a
stat: that counts when the exporter's figures grew (a replay or a backfill lands at once),
not when the events happened; the timeseries show that arrival rate, and say so. Variables province / city / county /
station are built from the `bureau` and `station` label values. The queries are tested
against a real Prometheus (services/metrics/tests/integration/test_dashboards.py).

    uv run python deploy/grafana/generate.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent / "dashboards"
DS = {"type": "prometheus", "uid": "prometheus"}
C = 'bureau=~"$county"'  # the county (or counties) chosen
CS = 'bureau=~"$county", station=~"$station"'


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DS, "expr": expr, "refId": ref, "legendFormat": legend}
    if instant:
        t["instant"] = True
        t["range"] = False
    return t


def panel(
    title: str,
    kind: str,
    targets: list[dict[str, Any]],
    x: int,
    y: int,
    w: int = 6,
    h: int = 6,
    unit: str = "short",
    description: str = "",
    thresholds: list[tuple[str, float | None]] | None = None,
    maximum: float | None = None,
    counts: tuple[str, ...] = (),
) -> dict[str, Any]:
    """`counts`: refIds of volume targets shown in a ratio panel (n beside the rate), which
    keep a plain count unit instead of the panel's percent."""
    steps = [{"color": c, "value": v} for c, v in (thresholds or [("green", None)])]
    defaults: dict[str, Any] = {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}}
    if maximum is not None:
        defaults["max"], defaults["min"] = maximum, 0
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [{**t, "refId": chr(65 + i)} for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": defaults, "overrides": [_count_override(r) for r in counts]},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]}} if kind == "stat" else {},
    }


def _count_override(ref: str) -> dict[str, Any]:
    return {"matcher": {"id": "byFrameRefID", "options": ref},
            "properties": [{"id": "unit", "value": "short"}, {"id": "max"}, {"id": "min"},
                           {"id": "thresholds", "value": {"mode": "absolute",
                                                          "steps": [{"color": "text", "value": None}]}}]}  # fmt: skip


def row(title: str, y: int) -> dict[str, Any]:
    return {"type": "row", "title": title, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
            "collapsed": False, "panels": []}  # fmt: skip


def variables(station: bool = False) -> list[dict[str, Any]]:
    base = "jingmin_intake_cases_received_total"

    def var(name: str, label: str, query: str, regex: str, wide: bool = True) -> dict[str, Any]:
        # "All" is ".*" only for province and city, which the next variable narrows; a
        # county's or station's "All" must be the listed values, or a city chosen with all
        # its counties would show every county of the province.
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DS,
            "query": {"query": query, "refId": name},
            "definition": query,
            "regex": regex,
            "refresh": 2,
            "multi": True,
            "includeAll": True,
            **({"allValue": ".*"} if wide else {}),
            "current": {"selected": True, "text": "All", "value": "$__all"},
            "sort": 1,
        }

    out = [
        var("province", "省 province", f"label_values({base}, bureau)", "/^([0-9]{2})/"),
        var("city", "市 city", f'label_values({base}{{bureau=~"$province.*"}}, bureau)',
            "/^([0-9]{4})/"),
        var("county", "县/分局 county", f'label_values({base}{{bureau=~"$city.*"}}, bureau)', "",
            wide=False),
    ]  # fmt: skip
    if station:
        out.append(
            var("station", "派出所 station",
                'label_values(jingmin_station_cases_received_total{bureau=~"$county"}, station)',
                "", wide=False)
        )  # fmt: skip
    return out


def dashboard(uid: str, title: str, panels: list[dict[str, Any]], station: bool = False,
              description: str = "") -> dict[str, Any]:  # fmt: skip
    for i, p in enumerate(panels):
        p["id"] = i + 1
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["jingmin"],
        "timezone": "Asia/Shanghai",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "1m",
        "time": {"from": "now-7d", "to": "now"},
        "templating": {"list": variables(station)},
        "annotations": {"list": []},
        "panels": panels,
    }


PCT = [("red", None), ("orange", 0.8), ("green", 0.9)]


def named(expr: str) -> str:
    """`expr` by station with each station's register name as a `name` label (labels stay
    codes): `jingmin_unit_info`'s code copied into `station` and joined; `or` keeps the
    stations the register does not know, and `max by` one info series per station however
    many exporters are scraped."""
    info = (
        'max by (station, name) (label_replace(jingmin_unit_info{level="station"}, '
        '"station", "$1", "code", "(.*)"))'
    )
    return f"({expr}) * on(station) group_left(name) {info} or on(station) ({expr})"


def ratio(num: str, den: str) -> str:
    """Pooled over every series selected (counties, cities): sum of numerators over sum of
    denominators, never an average of ratios (10 answers would weigh like 10,000)."""
    return f"sum({num}) / sum({den})"


def satisfaction(match: str, by: str = "") -> str:
    """Pooled satisfaction in rolling event-time windows, from the exported numerator and
    denominator of the selected counties (`match`: the label matchers)."""
    group = f" by ({by})" if by else ""
    return (f"sum{group} (jingmin_satisfaction_satisfied{{{match}}}) / "
            f"sum{group} (jingmin_satisfaction_answered{{{match}}})")  # fmt: skip


def survey_panels(y: int) -> list[dict[str, Any]]:
    """The resident survey's latest wave per county (weighted to the frame, its 95 % interval
    and n), its response rates, and the callbacks' satisfaction beside it: two questions
    (everyone vs. those who called), never pooled. Per county: an estimate is no sum."""

    def estimate(figure: str) -> list[dict[str, Any]]:
        m = f'{C}, figure="{figure}"'
        return [
            target(f"jingmin_survey_weighted_ratio{{{m}}}", "{{bureau}} weighted"),
            target(f"jingmin_survey_weighted_low_ratio{{{m}}}", "{{bureau}} 95 % low"),
            target(f"jingmin_survey_weighted_high_ratio{{{m}}}", "{{bureau}} 95 % high"),
            target(f"jingmin_survey_respondents{{{m}}}", "{{bureau}} n"),
        ]

    return [
        panel("调查满意度 Survey satisfaction 满意+基本满意, weighted, 95 % interval and n (latest wave)",
              "stat", estimate("satisfaction"), 0, y, w=7, unit="percentunit", thresholds=PCT,
              maximum=1, counts=("D",),
              description="Residents drawn at random from the frame, raked to its age, sex and "
              "residence margins; the latest wave whose fieldwork has started, per county."),
        panel("调查安全感 Survey security 安全+基本安全, weighted, 95 % interval and n (latest wave)",
              "stat", estimate("security"), 7, y, w=7, unit="percentunit", thresholds=PCT,
              maximum=1, counts=("D",)),
        panel("回访满意率 Callback satisfaction 满意+基本满意 (30 d, event time)", "stat",
              [target(satisfaction(f'{C}, window="30d"'), "callbacks"),
               target(f'sum(jingmin_satisfaction_answered{{{C}, window="30d"}})', "n answers")],
              14, y, w=5, unit="percentunit", thresholds=PCT, maximum=1, counts=("B",),
              description="The people who contacted the police, asked after their matter."),
        panel("调查应答率 Survey response rate AAPOR RR1 / RR3 (latest wave)", "stat",
              [target(f"jingmin_survey_response_rr1_ratio{{{C}}}", "{{bureau}} RR1"),
               target(f"jingmin_survey_response_rr3_ratio{{{C}}}", "{{bureau}} RR3")],
              19, y, w=5, unit="percentunit", maximum=1),
    ]  # fmt: skip


def commander() -> dict[str, Any]:
    p = [
        row("满意度与安全感 Satisfaction and security — volume beside quality", 0),
        panel("累计回访答复量 Survey answers (volume, all time)", "stat",
              [target(f"sum(jingmin_callback_answers_total{{{C}}})")], 0, 1),
        panel("满意率 Satisfaction 满意+基本满意 (30 d, event time)", "stat",
              [target(satisfaction(f'{C}, window="30d"'), "satisfaction"),
               target(f'sum(jingmin_satisfaction_answered{{{C}, window="30d"}})', "n answers")],
              6, 1, unit="percentunit", thresholds=PCT, maximum=1, counts=("B",)),
        panel("满意率滚动窗口 Satisfaction, rolling windows", "timeseries",
              [target(satisfaction(C, by="window"), "{{window}}")],
              12, 1, w=12, unit="percentunit", maximum=1),
        panel("按满意度分答复量 Answers by satisfaction (volume)", "timeseries",
              [target(f"sum by (satisfaction) (increase(jingmin_callback_answers_total{{{C}}}[$__rate_interval]))",
                      "{{satisfaction}}")], 0, 7, w=12),
        panel("安全感 Sense of security 安全+基本安全 (all time)", "stat",
              [target(ratio(f"jingmin_callback_answers_secure_total{{{C}}}",
                            f"jingmin_callback_answers_total{{{C}}}"))],
              12, 7, unit="percentunit", thresholds=PCT, maximum=1),
        panel("回访率与联系率 Callback coverage and contact rate (all time)", "stat",
              [target(ratio(f"jingmin_callbacks_completed_in_window_total{{{C}}}",
                            f"jingmin_callbacks_scheduled_total{{{C}}}"), "coverage"),
               target(ratio(f"jingmin_callback_attempts_reached_total{{{C}}}",
                            f"jingmin_callback_attempts_total{{{C}}}"), "contact")],
              18, 7, unit="percentunit", maximum=1),
        row("民意调查与回访 Survey and callbacks — residents sampled at random beside the people who called", 13),
        *survey_panels(14),
        row("时效 Timeliness — volume beside quality", 20),
        panel("按类型受理量 Cases received by kind (volume)", "timeseries",
              [target(f"sum by (kind) (increase(jingmin_intake_cases_received_total{{{C}}}[$__rate_interval]))",
                      "{{kind}}")], 0, 21, w=12),
        panel("按时办结率 On time: closed on time / (closed + open overdue) (all time)", "stat",
              [target(f"sum(jingmin_intake_cases_closed_on_time_total{{{C}}}) / "
                      f"(sum(jingmin_intake_cases_closed_total{{{C}}}) + "
                      f"sum(jingmin_intake_open_overdue_cases{{{C}}}))")],
              12, 21, unit="percentunit", thresholds=PCT, maximum=1),
        panel("超期未结警情 Open overdue cases (now)", "stat",
              [target(f"sum(jingmin_intake_open_overdue_cases{{{C}}})")], 18, 21,
              thresholds=[("green", None), ("orange", 1), ("red", 20)]),
        panel("派警时长 p90 Dispatch latency p90 (target 60 s)", "timeseries",
              [target("histogram_quantile(0.9, sum by (le) (rate("
                      f"jingmin_intake_dispatch_latency_seconds_bucket{{{C}}}[$__rate_interval])))",
                      "p90")], 0, 27, w=12, unit="s"),
        panel("60秒内派警率 Dispatched within 60 s (all time)", "stat",
              [target(f'sum(jingmin_intake_dispatch_latency_seconds_bucket{{{C}, le="60.0"}}) / '
                      f"sum(jingmin_intake_dispatch_latency_seconds_count{{{C}}})")],
              12, 27, unit="percentunit", thresholds=PCT, maximum=1),
        panel("按时到场率 Arrivals on target (all time)", "stat",
              [target(ratio(f"jingmin_intake_arrivals_on_target_total{{{C}}}",
                            f"jingmin_intake_arrival_latency_seconds_count{{{C}}}"))],
              18, 27, unit="percentunit", thresholds=PCT, maximum=1),
        row("投诉、督察、走访 Complaints, supervision, visits — volume beside quality", 33),
        panel("累计投诉受理量 Complaints received (volume, all time)", "stat",
              [target(f"sum(jingmin_complaints_received_total{{{C}}})")], 0, 34, w=4),
        panel("千件警情投诉数 Complaints per 1,000 cases (all time)", "stat",
              [target(f"1000 * sum(jingmin_complaints_received_total{{{C}}}) / "
                      f"sum(jingmin_intake_cases_received_total{{{C}}})")], 4, 34, w=4),
        panel("投诉属实率 Substantiated (incl. partially) / concluded (all time)", "stat",
              [target(ratio(f"jingmin_complaints_substantiated_total{{{C}}}",
                            f"jingmin_complaints_concluded_total{{{C}}}"))],
              8, 34, w=4, unit="percentunit", maximum=1),
        panel("累计督察令下发量 Supervision orders issued (volume, all time)", "stat",
              [target(f"sum(jingmin_supervision_orders_issued_total{{{C}}})")], 12, 34, w=4),
        panel("超期未结督察令 Open overdue supervision orders (now)", "stat",
              [target(f"sum(jingmin_supervision_open_overdue_orders{{{C}}})")], 16, 34, w=4,
              thresholds=[("green", None), ("red", 1)]),
        panel("走访量与拒访率 Visits attempted (volume) / refusal rate (all time)", "stat",
              [target(f"sum(jingmin_visits_attempted_total{{{C}}})", "attempted"),
               target(ratio(f"jingmin_visits_refused_total{{{C}}}",
                            f"jingmin_visits_attempted_total{{{C}}}"), "refused or nobody home")],
              20, 34, w=4, unit="percentunit", maximum=1, counts=("A",)),
    ]  # fmt: skip
    return dashboard(
        "jingmin-commander",
        "警民 局长总览 — Jingmin commander overview (county)",
        p,
        description="Satisfaction, security, timeliness, complaints, supervision "
        "and visits per county; every volume beside its quality figure.",
    )


def league(title: str, value: str, n: str, x: int, y: int) -> dict[str, Any]:
    """A station league table: value, n and the change from the same window 30 days
    before, ranked by value (rank = place in the sorted table). One row per station;
    `avg by` drops the scrape labels only (a second exporter replica serves the same)."""
    cols = [
        target(named(f"avg by (station) ({value}{{{CS}}})"), "", instant=True),
        target(named(f"avg by (station) ({n}{{{CS}}})"), "", instant=True),
        target(named(f"avg by (station) ({value}{{{CS}}}) - "
                     f"avg by (station) ({value}{{{CS}}} offset 30d)"), "", instant=True),
    ]  # fmt: skip
    for t in cols:
        t["format"] = "table"
    p = panel(title, "table", cols, x, y, w=24, h=9, unit="percentunit", counts=("B",))
    p["transformations"] = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {
            "excludeByName": {"Time": True},
            "renameByName": {"name": "派出所", "station": "代码", "Value #A": "满意率",
                             "Value #B": "n（答复）", "Value #C": "较上期 (30 d)"},
            "indexByName": {"name": 0, "station": 1, "Value #A": 2, "Value #B": 3,
                            "Value #C": 4}}},
        {"id": "sortBy", "options": {"sort": [{"field": "满意率", "desc": True}]}},
        {"id": "calculateField", "options": {"mode": "index", "alias": "名次",
                                             "index": {"asPercentile": False}}},
    ]  # fmt: skip
    p["options"] = {"showHeader": True, "cellHeight": "sm"}
    return p


def station() -> dict[str, Any]:
    p = [
        panel("各派出所累计受理量 Cases received per station (volume, all time)", "bargauge",
              [target(named(f"sum by (station) (jingmin_station_cases_received_total{{{CS}}})"),
                      "{{name}} {{station}}")], 0, 0, w=12, h=10),
        # One series per station, pooled over the station's answers by the exporter: the
        # avg only drops the scrape labels (a second exporter replica serves the same value).
        panel("各派出所满意率 Satisfaction per station (30 d)", "bargauge",
              [target(named(f"avg by (station) (jingmin_station_satisfaction_ratio{{{CS}}})"),
                      "{{name}} {{station}}")], 12, 0, w=12, h=10, unit="percentunit", thresholds=PCT,
              maximum=1),
        panel("各派出所受理量趋势 Cases received per station over time", "timeseries",
              [target(named(f"sum by (station) (increase(jingmin_station_cases_received_total{{{CS}}}[$__rate_interval]))"),
                      "{{name}} {{station}}")], 0, 10, w=12, h=8),
        panel("各派出所满意率趋势 Satisfaction per station over time (30 d window)", "timeseries",
              [target(named(f"avg by (station) (jingmin_station_satisfaction_ratio{{{CS}}})"),
                      "{{name}} {{station}}")], 12, 10, w=12, h=8, unit="percentunit", maximum=1),
        league("满意率排名 Station league: satisfaction (30 d), n, change from 30 days before",
               "jingmin_station_satisfaction_ratio", "jingmin_station_satisfaction_answered",
               0, 18),
    ]  # fmt: skip
    return dashboard(
        "jingmin-station",
        "警民 派出所 — Jingmin station drill-down",
        p,
        station=True,
        description="Volume and satisfaction per station. Officer-level figures "
        "are in the metrics API (GET /v1/stations/{station}/officers), for "
        "commanders and supervisors only: never Prometheus labels.",
    )


def complaints() -> dict[str, Any]:
    p = [
        panel("投诉受理量 Complaints received (volume)", "timeseries",
              [target(f"sum(increase(jingmin_complaints_received_total{{{C}}}[$__rate_interval]))",
                      "received")], 0, 0, w=12),
        panel("属实率 Substantiation rate (all time)", "stat",
              [target(ratio(f"jingmin_complaints_substantiated_total{{{C}}}",
                            f"jingmin_complaints_concluded_total{{{C}}}"))],
              12, 0, unit="percentunit", maximum=1),
        panel("办结量 Concluded (volume, all time)", "stat",
              [target(f"sum(jingmin_complaints_concluded_total{{{C}}})")], 18, 0),
        panel("按时受理告知率 Acknowledged on time (due: 15 days) (all time)", "stat",
              [target(ratio(f"jingmin_complaints_acknowledgements_on_time_total{{{C}}}",
                            f"jingmin_complaints_acknowledgements_due_total{{{C}}}"))],
              0, 6, unit="percentunit", thresholds=PCT, maximum=1),
        panel("按时办结率 Concluded on time (60 days, one extension) (all time)", "stat",
              [target(ratio(f"jingmin_complaints_conclusions_on_time_total{{{C}}}",
                            f"jingmin_complaints_conclusions_due_total{{{C}}}"))],
              6, 6, unit="percentunit", thresholds=PCT, maximum=1),
        panel("应告知/应办结量 Acknowledgements / conclusions due (volume, all time)", "stat",
              [target(f"sum(jingmin_complaints_acknowledgements_due_total{{{C}}})", "ack due"),
               target(f"sum(jingmin_complaints_conclusions_due_total{{{C}}})", "conclusion due")],
              12, 6),
        panel("超期未结投诉 Open overdue complaints (now)", "stat",
              [target(f"sum(jingmin_complaints_open_overdue{{{C}}})")], 18, 6,
              thresholds=[("green", None), ("red", 1)]),
        panel("督察令下发量 Supervision orders issued (volume)", "timeseries",
              [target(f"sum(increase(jingmin_supervision_orders_issued_total{{{C}}}[$__rate_interval]))",
                      "issued")], 0, 12, w=12),
        panel("超期未结督察令 Open overdue supervision orders (now)", "timeseries",
              [target(f"sum by (bureau) (jingmin_supervision_open_overdue_orders{{{C}}})",
                      "{{bureau}}")], 12, 12, w=12),
        panel("整改后满意率 Service recovery: satisfied on follow-up after 不满意 (all time)", "stat",
              [target(ratio(f"jingmin_recovery_followups_satisfied_total{{{C}}}",
                            f"jingmin_recovery_followups_answered_total{{{C}}}"))],
              0, 18, unit="percentunit", maximum=1),
        panel("整改回访答复量 Service-recovery follow-ups answered (volume, all time)", "stat",
              [target(f"sum(jingmin_recovery_followups_answered_total{{{C}}})")], 6, 18),
        # As the on-time rate of cases: an order past its deadline and never reported back
        # counts against the rate, so not reporting scores no better than reporting late.
        panel("督办按时反馈率 Supervision reported back on time / (reported + open overdue) (all time)", "stat",
              [target(f"(sum(jingmin_supervision_reports_on_time_total{{{C}}}) or vector(0)) / "
                      f"((sum(jingmin_supervision_reports_total{{{C}}}) or vector(0)) + "
                      f"sum(jingmin_supervision_open_overdue_orders{{{C}}}))", "on time"),
               target(f"(sum(jingmin_supervision_reports_total{{{C}}}) or vector(0)) + "
                      f"sum(jingmin_supervision_open_overdue_orders{{{C}}})", "n due")],
              12, 18, unit="percentunit", thresholds=PCT, maximum=1, counts=("B",)),
        panel("督办升级 Supervision orders escalated (volume, all time)", "stat",
              [target(f"sum(jingmin_supervision_escalations_total{{{C}}}) or vector(0)")], 18, 18),
        row("督察与问责 Inspections, rectification and accountability", 24),
        panel("督察次数 Inspections completed (volume, all time)", "stat",
              [target(f"sum(jingmin_supervision_inspections_total{{{C}}}) or vector(0)")], 0, 25),
        panel("督察发现问题 Inspection findings by severity (all time)", "bargauge",
              [target(f"sum by (severity) (jingmin_supervision_findings_total{{{C}}})",
                      "{{severity}}")], 6, 25),
        panel("限期整改令 Rectification orders issued (volume, all time)", "stat",
              [target(f"sum(jingmin_supervision_rectification_orders_total{{{C}}}) or vector(0)")],
              12, 25),
        panel("问责 Accountability actions taken (volume, all time)", "stat",
              [target(f"sum(jingmin_supervision_accountability_actions_total{{{C}}}) or vector(0)")],
              18, 25),
    ]  # fmt: skip
    return dashboard(
        "jingmin-complaints", "警民 投诉与督察 — Jingmin complaints and supervision", p
    )


def equity() -> dict[str, Any]:
    """Unequal treatment (差异性执法, DOMAIN §3.1): the same figures per party category.
    Cases and complaints with no category are counted apart, never in a group."""
    P = 'party_category!="unknown"'

    def by_party(num: str, den: str, scale: str = "") -> str:
        # A group with cases but no complaints has a rate of 0, not none.
        n, d = (
            f"sum by (party_category) ({num}{{{C}, {P}}})",
            f"sum by (party_category) ({den}{{{C}, {P}}})",
        )
        return f"{scale}({n} or 0 * {d}) / {d}"

    sat = by_party("jingmin_party_answers_satisfied_total", "jingmin_party_answers_total")
    p = [
        panel("各群体满意率 Satisfaction by party: local / non-local / vulnerable (all time)", "bargauge",
              [target(sat, "{{party_category}}")], 0, 0, w=12, h=7, unit="percentunit",
              thresholds=PCT, maximum=1),
        panel("各群体回访答复量 Survey answers by party (volume, all time)", "bargauge",
              [target(f"sum by (party_category) (jingmin_party_answers_total{{{C}, {P}}})",
                      "{{party_category}}")], 12, 0, w=12, h=7),
        panel("各群体千件警情投诉数 Complaints per 1,000 cases by party (all time)", "bargauge",
              [target(by_party("jingmin_party_complaints_received_total",
                               "jingmin_party_cases_received_total", "1000 * "),
                      "{{party_category}}")], 0, 7, w=12, h=7),
        panel("各群体受理量与投诉量 Cases and complaints by party (volume, all time)", "bargauge",
              [target(f"sum by (party_category) (jingmin_party_cases_received_total{{{C}, {P}}})",
                      "cases {{party_category}}"),
               target(f"sum by (party_category) (jingmin_party_complaints_received_total{{{C}, {P}}})",
                      "complaints {{party_category}}")], 12, 7, w=12, h=7),
        panel("满意率差距 Satisfaction gap: highest − lowest party (all time)", "stat",
              [target(f"max({sat}) - min({sat})")], 0, 14, unit="percentunit",
              thresholds=[("green", None), ("orange", 0.05), ("red", 0.1)]),
        panel("投诉当事人类别不明 Complaints whose party category nobody knows (volume, all time)", "stat",
              [target(f'sum(jingmin_party_complaints_received_total{{{C}, party_category="unknown"}}) or vector(0)')],
              6, 14),
    ]  # fmt: skip
    return dashboard(
        "jingmin-equity",
        "警民 公平性 — Jingmin equity: local, non-local, vulnerable",
        p,
        description="Satisfaction and complaints per 1,000 cases for local, non-local and "
        "vulnerable parties (DOMAIN §4 equity gap), each beside its volume.",
    )


def visits() -> dict[str, Any]:
    p = [
        panel("各项目走访完成量 Visits completed by programme (volume, all time)", "bargauge",
              [target(f"sum by (programme) (jingmin_visits_completed_total{{{C}}})",
                      "{{programme}}")], 0, 0, w=12, h=8),
        panel("走访量与拒访率 Visits attempted (volume) / refusal rate (all time)", "stat",
              [target(f"sum(jingmin_visits_attempted_total{{{C}}})", "attempted"),
               target(ratio(f"jingmin_visits_refused_total{{{C}}}",
                            f"jingmin_visits_attempted_total{{{C}}}"), "refused or nobody home")],
              12, 0, w=12, h=8, unit="percentunit", maximum=1, counts=("A",)),
        panel("警民互动活动 Engagement events held (volume, all time)", "stat",
              [target(f"sum(jingmin_engagement_events_total{{{C}}}) or vector(0)")], 0, 8),
        panel("参与群众 Members of the public at engagement events (all time)", "stat",
              [target(f"sum(jingmin_engagement_participants_total{{{C}}}) or vector(0)")], 6, 8),
    ]  # fmt: skip
    return dashboard(
        "jingmin-visits",
        "警民 走访与互动 — Jingmin visits and engagement",
        p,
        description="爱民大走访, 领导干部大走访, 入户调查 and the other programmes: visits "
        "completed, attempts and refusals; engagement events and their participants. "
        "Officers visiting and opinions are in the metrics API (GET /v1/figures).",
    )


def timeliness() -> dict[str, Any]:
    def q(h: str, quantile: float) -> str:
        return (f"histogram_quantile({quantile}, sum by (le) (rate({h}_bucket{{{C}}}"
                "[$__rate_interval])))")  # fmt: skip

    def share(h: str, le: str) -> str:
        return f'sum({h}_bucket{{{C}, le="{le}"}}) / sum({h}_count{{{C}}})'

    d = "jingmin_intake_dispatch_latency_seconds"
    a = "jingmin_intake_arrival_latency_seconds"
    r = "jingmin_intake_resolution_time_seconds"
    p = [
        panel("派警时长 Dispatch latency p50 / p90 (target 60 s)", "timeseries",
              [target(q(d, 0.5), "p50"), target(q(d, 0.9), "p90"),
               target("vector(60)", "target")], 0, 0, w=12, unit="s"),
        panel("派警时长分布 Dispatch distribution vs target (all time)", "bargauge",
              [target(share(d, "30.0"), "≤ 30 s"), target(share(d, "60.0"), "≤ 60 s"),
               target(share(d, "120.0"), "≤ 2 min"), target(share(d, "300.0"), "≤ 5 min")],
              12, 0, w=6, unit="percentunit", maximum=1),
        panel("派警量 Dispatches (volume, all time)", "stat", [target(f"sum({d}_count{{{C}}})")], 18, 0),
        panel("到场时长 Arrival latency p50 / p90 (urban 5, suburban 10, rural 20 min)", "timeseries",
              [target(q(a, 0.5), "p50"), target(q(a, 0.9), "p90")], 0, 6, w=12, unit="s"),
        panel("到场时长分布 Arrival distribution vs area targets (all time)", "bargauge",
              [target(share(a, "300.0"), "≤ 5 min"), target(share(a, "600.0"), "≤ 10 min"),
               target(share(a, "1200.0"), "≤ 20 min")], 12, 6, w=6, unit="percentunit",
              maximum=1),
        panel("按本局标准到场率 Arrivals on the bureau's own target / arrivals (all time)", "stat",
              [target(ratio(f"jingmin_intake_arrivals_on_target_total{{{C}}}", f"{a}_count{{{C}}}")),
               target(f"sum({a}_count{{{C}}})", "n arrivals")], 18, 6, unit="percentunit",
              maximum=1, counts=("B",)),
        panel("办结时长 Resolution time p50 / p90", "timeseries",
              [target(q(r, 0.5), "p50"), target(q(r, 0.9), "p90")], 0, 12, w=12, unit="s"),
        panel("1/3/7/30天内办结 Resolved within 1 / 3 / 7 / 30 days", "bargauge",
              [target(share(r, "86400.0"), "≤ 1 d"), target(share(r, "259200.0"), "≤ 3 d"),
               target(share(r, "604800.0"), "≤ 7 d"), target(share(r, "2592000.0"), "≤ 30 d")],
              12, 12, w=6, unit="percentunit", maximum=1),
        panel("按时率与超期未结 On-time rate (all time) and open overdue (now)", "stat",
              [target(f"sum(jingmin_intake_cases_closed_on_time_total{{{C}}}) / "
                      f"(sum(jingmin_intake_cases_closed_total{{{C}}}) + "
                      f"sum(jingmin_intake_open_overdue_cases{{{C}}}))", "on time"),
               target(f"sum(jingmin_intake_open_overdue_cases{{{C}}})", "open overdue")],
              18, 12, unit="percentunit", thresholds=PCT, maximum=1, counts=("B",)),
        # Services with no visit recorded are outside the rate and shown beside it.
        panel("一次办结率 One-visit completion (visits recorded) and services completed (all time)", "stat",
              [target(ratio(f"jingmin_intake_services_one_visit_total{{{C}}}",
                            f"jingmin_intake_services_visits_recorded_total{{{C}}}"), "one visit"),
               target(f"sum(jingmin_intake_services_visits_recorded_total{{{C}}})",
                      "n visits recorded"),
               target(f"sum(jingmin_intake_services_unrecorded_total{{{C}}})",
                      "no visit recorded")],
              0, 18, unit="percentunit", maximum=1, counts=("B", "C")),
        panel("移交率 Referral rate (transferred / received) (all time)", "stat",
              [target(ratio(f"jingmin_intake_cases_transferred_total{{{C}}}",
                            f"jingmin_intake_cases_received_total{{{C}}}"))],
              6, 18, unit="percentunit", maximum=1),
    ]  # fmt: skip
    return dashboard("jingmin-timeliness", "警民 时效 — Jingmin timeliness vs targets", p)


def platform() -> dict[str, Any]:
    http = "jingmin_http_request_duration_seconds"
    p = [
        panel("接口时延 p99 API latency p99 by service", "timeseries",
              [target(f"histogram_quantile(0.99, sum by (service, le) (rate({http}_bucket[5m])))",
                      "{{service}}")], 0, 0, w=12, unit="s"),
        panel("接口5xx占比 API 5xx share by service", "timeseries",
              [target(f'(sum by (service) (rate({http}_count{{status=~"5.."}}[5m])) or '
                      f"sum by (service) (rate({http}_count[5m])) * 0) / "
                      f"sum by (service) (rate({http}_count[5m]))", "{{service}}")],
              12, 0, w=12, unit="percentunit"),
        panel("待发消息 Outbox pending (relay backlog)", "timeseries",
              [target("sum by (service) (jingmin_outbox_pending_messages)", "{{service}}")],
              0, 6, w=12),
        panel("最久待发消息 Oldest pending outbox row (age)", "timeseries",
              [target("max by (service) (jingmin_outbox_oldest_pending_seconds)", "{{service}}")],
              12, 6, w=12, unit="s"),
        panel("消费积压 Consumer lag (messages)", "timeseries",
              [target("sum by (service, consumer) (jingmin_consumer_lag_messages)",
                      "{{service}} {{consumer}}")], 0, 12, w=12),
        panel("死信 Dead letters (per second)", "timeseries",
              [target('sum(rate(jingmin_consumer_processed_total{outcome="dead_lettered"}[5m])) '
                      "or vector(0)", "services"),
               target('sum(rate(jingmin_metrics_facts_total{outcome="dead_lettered"}[5m])) '
                      "or vector(0)", "metrics processors")], 12, 12, w=12),
        panel("指标处理器重平衡 Metrics processors: rebalances (rebuilds, last hour)", "stat",
              [target("sum(increase(jingmin_metrics_rebuilds_total[1h])) or vector(0)")],
              0, 18),
        panel("指标处理器事件 Metrics processors: events applied / duplicates (per second)", "timeseries",
              [target('sum by (outcome) (rate(jingmin_metrics_facts_total[5m]))',
                      "{{outcome}}")], 6, 18, w=6),
        panel("指标导出器状态 Metrics exporter: snapshot age and partitions reporting", "stat",
              [target("max(jingmin_metrics_snapshot_age_seconds)", "age s"),
               target("min(jingmin_metrics_partitions_reporting)", "partitions")], 12, 18),
        panel("指标导出器事件 Metrics exporter: events applied (all processors)", "stat",
              [target("max(jingmin_metrics_events_applied_total)")], 18, 18),
    ]  # fmt: skip
    return dashboard(
        "jingmin-platform",
        "警民 平台运行 — Jingmin platform health (bureau IT)",
        p,
        description="API latency and errors, outbox backlog and age, consumer "
        "lag, dead letters, metrics processors and exporter.",
    )


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    for name, build in (("commander-overview", commander), ("station-drilldown", station),
                        ("complaints-supervision", complaints), ("timeliness", timeliness),
                        ("equity", equity), ("visits", visits),
                        ("platform-health", platform)):  # fmt: skip
        text = json.dumps(build(), ensure_ascii=False, indent=2) + "\n"
        (HERE / f"{name}.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
