"""Every figure's definition is written once: each keyed definition names a figure that
GET /v1/figures returns, and the route's OpenAPI description says what the table says."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from jingmin_metrics.entrypoints import routes
from jingmin_metrics.figures import compute
from jingmin_metrics.figures.definitions import DEFINITIONS
from jingmin_metrics.figures.select import Cell

KEYED = [d for d in DEFINITIONS if d.key]


def _at(body: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        body = body[part]
    return body


def test_each_definition_names_a_figure_of_the_json_api() -> None:
    figures = compute.summary(compute.Scope({}, ["330602"], None, None))
    for d in KEYED:
        _at(figures, d.key)  # a KeyError names a definition with no figure


def test_the_figures_route_documents_every_definition_in_openapi() -> None:
    app = FastAPI()
    app.include_router(routes.router)
    described = app.openapi()["paths"]["/v1/figures"]["get"]["description"]
    for d in KEYED:
        assert f"`{d.key}` ({d.name_zh}, {d.figure}): {d.numerator} / {d.denominator}" in (
            described
        )


def _order(measure: str, day: str, count: int, on_time: str | None = None) -> Cell:
    dims = ("330602001", "inspection", "case", "county", "10")
    return Cell("330602", day, measure, (*dims, on_time) if on_time else dims, count)


def test_orders_never_reported_back_count_against_report_back_on_time() -> None:
    """An order past its deadline and never reported back is no better than a late one."""
    by_measure = {
        "supervision.reported": [_order("supervision.reported", "2026-11-02", 3, "true")],
        "supervision.open_overdue": [_order("supervision.open_overdue", "now", 2)],
    }
    s = compute.summary(compute.Scope(by_measure, ["330602"], None, None))["supervision"]
    assert s["reported_on_time"] == {"numerator": 3, "denominator": 5, "rate": 0.6}
