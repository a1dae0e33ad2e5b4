"""The exporter stays within its series budget for 100 bureaus of 20 stations each."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from jingmin_metrics.figures import families
from jingmin_metrics.figures.select import index
from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from support import bureau_codes, synthetic_view

NOW = datetime(2026, 3, 4, 6, 0, tzinfo=UTC)
FORBIDDEN = {"officer", "officer_id", "case_id", "callback_id", "subject_id", "complaint_id"}
ALLOWED = {"bureau", "station", "channel", "kind", "category", "branch", "area_type",
           "satisfaction", "window", "le"}  # fmt: skip


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
