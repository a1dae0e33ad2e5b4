"""The exporter stays within its series budget for 100 bureaus of 20 stations each."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from jingmin_metrics.domain.measures import MEASURES
from jingmin_metrics.figures import compute, families
from jingmin_metrics.figures.select import Cell, index
from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from support import bureau_codes, synthetic_view

NOW = datetime(2026, 3, 4, 6, 0, tzinfo=UTC)
FORBIDDEN = {"officer", "officer_id", "case_id", "callback_id", "subject_id", "complaint_id"}
ALLOWED = {"bureau", "station", "channel", "kind", "category", "branch", "area_type",
           "satisfaction", "window", "le", "party_category", "programme", "severity",
           "figure"}  # fmt: skip


def _series() -> dict[str, int]:
    by_measure = index(synthetic_view(bureau_codes(100), 20, NOW, days=1).merged())

    class C(Collector):
        def collect(self):  # type: ignore[no-untyped-def]
            return families.collect(by_measure, NOW)

    reg = CollectorRegistry(auto_describe=False)
    reg.register(C())
    counts: dict[str, int] = {}
    for fam in text_string_to_metric_families(generate_latest(reg).decode()):
        counts[fam.name] = len(fam.samples)
        for sample in fam.samples:
            assert not FORBIDDEN & set(sample.labels), sample
            assert set(sample.labels) <= ALLOWED, sample
    return counts


def test_every_family_within_its_budget_and_the_endpoint_under_the_limit() -> None:
    counts = _series()
    budgets = {f.name: f.budget for f in families.FAMILIES}
    assert set(counts) == set(budgets)
    for name, n in counts.items():
        assert n <= budgets[name], f"{name}: {n} series, budget {budgets[name]}"
    # The worst case (every label value present everywhere) is what was generated.
    assert counts["jingmin_station_cases_received"] == 2000
    assert counts["jingmin_intake_cases_received"] == 800
    # Every county's latest survey wave is estimated: both figures, with their bounds.
    assert counts["jingmin_survey_weighted_ratio"] == 200
    assert counts["jingmin_survey_weighted_low_ratio"] == 200
    assert counts["jingmin_survey_response_rr3_ratio"] == 100
    assert sum(counts.values()) + families.SELF_BUDGET < families.SERIES_LIMIT
    assert families.total_budget() < families.SERIES_LIMIT


def test_names_follow_prometheus_conventions() -> None:
    for f in families.FAMILIES:
        assert re.fullmatch(r"jingmin_[a-z0-9_]+", f.name)
        if f.kind == "histogram":
            assert f.name.endswith("_seconds"), f.name
        if f.kind == "ratio":
            assert f.name.endswith("_ratio"), f.name
        if f.kind == "counter":
            assert not f.name.endswith("_total"), "prometheus_client appends _total"
        assert not FORBIDDEN & set(f.labels)


def test_latency_histograms_have_buckets_at_and_around_the_targets() -> None:
    by_measure = index(synthetic_view(["330602"], 1, NOW, days=1).merged())
    bounds: dict[str, set[float]] = {}
    for fam in families.collect(by_measure, NOW):
        for sample in fam.samples:
            if sample.name.endswith("_bucket"):
                bounds.setdefault(fam.name, set()).add(float(sample.labels["le"]))
    response = {15, 30, 60, 120, 300, 600, 1200, 1800, 3600, float("inf")}
    day = 86400
    assert bounds["jingmin_intake_dispatch_latency_seconds"] == response
    assert bounds["jingmin_intake_arrival_latency_seconds"] == response
    assert bounds["jingmin_intake_resolution_time_seconds"] == {
        d * day for d in (1, 3, 7, 15, 30, 60)
    } | {float("inf")}


def _cell(measure: str, count: int, **dims: str) -> Cell:
    names = MEASURES[measure].dims
    return Cell("330602", "2026-03-03", measure, tuple(dims.get(n, "") for n in names), count)


def test_equity_and_programme_families_count_what_the_json_api_counts() -> None:
    """The boards' equity and visit figures are the JSON API's, per bureau and in all time."""
    station = {"station": "330602001", "hour": "10"}
    cells = [
        _cell("intake.received", 40, party_category="local", **station),
        _cell("intake.received", 9, party_category="non_local", **station),
        _cell("intake.received", 3, **station),
        _cell("callback.answered", 20, party_category="local", satisfaction="satisfied",
              trigger="case_resolved", **station),
        _cell("callback.answered", 5, party_category="non_local", satisfaction="dissatisfied",
              trigger="case_resolved", **station),
        # A service-recovery follow-up is no equity answer, as in the JSON API.
        _cell("callback.answered", 2, party_category="local", satisfaction="satisfied",
              trigger="service_recovery", **station),
        _cell("complaints.received", 2, party_category="non_local", **station),
        _cell("complaints.received", 1, **station),
        _cell("visits.attempted", 6, programme="aimin", outcome="completed", **station),
        _cell("visits.attempted", 2, programme="aimin", outcome="refused", **station),
        _cell("visits.attempted", 3, programme="three_visits", outcome="completed", **station),
    ]  # fmt: skip
    by_measure: dict[str, list[Cell]] = {}
    for c in cells:
        by_measure.setdefault(c.measure, []).append(c)
    samples: dict[tuple[str, str], float] = {}
    for fam in families.collect(by_measure, NOW):
        for sample in fam.samples:
            key = sample.labels.get("party_category") or sample.labels.get("programme")
            if key is not None:
                samples[(sample.name, key)] = sample.value
    scope = compute.Scope(by_measure, ["330602"], None, None)
    equity = compute.equity(scope)
    for party, g in equity["groups"].items():
        sat = g["satisfaction"]
        assert samples.get(("jingmin_party_answers_total", party), 0) == sat["denominator"]
        assert samples.get(("jingmin_party_answers_satisfied_total", party), 0) == sat["numerator"]
        assert samples.get(("jingmin_party_cases_received_total", party), 0) == g["cases"]
        assert samples.get(("jingmin_party_complaints_received_total", party), 0) == g["complaints"]
    assert samples[("jingmin_party_complaints_received_total", "unknown")] == 1
    assert equity["complaints_party_unknown"] == 1
    assert samples[("jingmin_party_cases_received_total", "unknown")] == 3
    completed = compute.summary(scope)["visits"]["by_programme"]
    exported = {k: v for (n, k), v in samples.items() if n == "jingmin_visits_completed_total"}
    assert exported == completed == {"aimin": 6, "three_visits": 3}
