"""The report's numbers: each headline figure per station of a scope and for the scope as a
whole, for a month and the month before, computed by `figures.compute.summary` over the
same cells the JSON API reads, so a cell here equals GET /v1/figures for that station (or
scope) with from/to the month's first and last day. The scope's total row is that
summary for the scope itself: pooled (sum of numerators over sum of denominators)."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from jingmin_metrics.domain.measures import MEASURES
from jingmin_metrics.figures import compute, disclosure
from jingmin_metrics.figures.select import Cell


@dataclass(frozen=True)
class Headline:
    key: str  # JSON path under `figures` (and the definitions' key)
    label: str
    target: float | None  # a share (0..1) from DOMAIN §5; None where §5 sets none
    higher_is_better: bool = True
    per_1000: bool = False  # a count per 1,000 cases rather than a share


HEADLINES: tuple[Headline, ...] = (
    Headline("callbacks.satisfaction", "满意率", None),
    Headline("intake.dispatch_within_60s", "60秒内派警率", 0.9),  # NFPA 1225, DOMAIN §5
    Headline("intake.arrival_on_target", "按时到场率", None),
    Headline("intake.on_time", "按时办结率", None),
    Headline("intake.one_visit", "一次办结率", None),
    Headline("callbacks.coverage", "回访率", None),
    Headline("callbacks.contact", "回访接通率", None),
    Headline("complaints.per_1000_cases", "每千件警情投诉数", None, False, True),
)


@dataclass
class Value:
    """One figure of one unit: what the JSON API gives, and what the report may show."""

    numerator: int
    denominator: int
    raw: float | None  # the JSON API's value (rate or per 1,000)
    shown: float | None  # None when small-cell suppression hides it
    rank: int | None = None
    change: float | None = None  # against the previous month, when both are shown


@dataclass
class Row:
    code: str
    name: str
    values: dict[str, Value] = field(default_factory=dict)
    services_unrecorded: int = 0


@dataclass
class League:
    scope: str
    scope_name: str
    month: str  # YYYY-MM
    first: str
    last: str
    stations: list[Row]
    total: Row


def month_bounds(month: str) -> tuple[str, str]:
    """First and last bureau day of a YYYY-MM month (checked by the CLI)."""
    year, mon = int(month[:4]), int(month[5:7])
    last = calendar.monthrange(year, mon)[1]
    return date(year, mon, 1).isoformat(), date(year, mon, last).isoformat()


def previous_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year - 1}-12" if mon == 1 else f"{year}-{mon - 1:02d}"


def _get(figures: dict[str, Any], key: str) -> Any:
    group, name = key.split(".")
    return figures[group][name]


def value_of(figures: dict[str, Any], h: Headline) -> Value:
    if h.per_1000:
        complaints, cases = figures["complaints"]["received"], figures["intake"]["received"]
        raw = _get(figures, h.key)
        # A count of 1 to 4 complaints is not shown (DOMAIN §4 guardrail), nor its rate.
        hidden = disclosure.count(complaints) is None or cases < disclosure.SUPPRESS_BELOW
        shown = None if hidden else raw
        return Value(complaints, cases, raw, shown)
    r = _get(figures, h.key)
    return Value(
        r["numerator"], r["denominator"], r["rate"],
        disclosure.ratio(r["numerator"], r["denominator"])["rate"],
    )  # fmt: skip


def stations_in(data: dict[str, list[Cell]], scope: str, first: str, last: str) -> list[str]:
    """Station codes (9 digits) under the scope with any cell in the period."""
    found = set()
    for measure, cells in data.items():
        if MEASURES[measure].dims[:1] != ("station",):
            continue
        for c in cells:
            code = c.dims[0]
            if len(code) == 9 and code.startswith(scope) and first <= c.day <= last:
                found.add(code)
    return sorted(found)


def _row(data: dict[str, list[Cell]], code: str, name: str, first: str, last: str) -> Row:
    figures = compute.summary(compute.Scope(data, [code], first, last))
    row = Row(code, name, {h.key: value_of(figures, h) for h in HEADLINES})
    row.services_unrecorded = figures["intake"]["services_unrecorded"]
    return row


def _rank(rows: Sequence[Row]) -> None:
    """Competition ranking (1, 2, 2, 4) among the stations whose value is shown."""
    for h in HEADLINES:
        shown = [v for r in rows if (v := r.values[h.key].shown) is not None]
        for r in rows:
            v = r.values[h.key].shown
            if v is not None:
                better = [s for s in shown if (s > v if h.higher_is_better else s < v)]
                r.values[h.key].rank = len(better) + 1


def _change(now: Row, before: Row) -> None:
    for key, v in now.values.items():
        prev = before.values[key].shown
        if v.shown is not None and prev is not None:
            v.change = round(v.shown - prev, 4)


def _unit_name(code: str) -> str:
    """A code the register does not name: the county office (县局机关, station 000) by that
    name, any other unit by its code."""
    return f"县局机关（{code}）" if code.endswith("000") else code


def build(
    data: dict[str, list[Cell]], scope: str, month: str, names: dict[str, str], scope_name: str
) -> League:
    first, last = month_bounds(month)
    p_first, p_last = month_bounds(previous_month(month))
    codes = sorted(set(stations_in(data, scope, first, last)))
    rows = [_row(data, c, names.get(c) or _unit_name(c), first, last) for c in codes]
    # A unit with cells in the month but none behind any headline figure (say, the county
    # office named only on a complaint) has nothing to compare: no row of dashes.
    rows = [r for r in rows if any(v.denominator for v in r.values.values())]
    _rank(rows)
    for r in rows:
        _change(r, _row(data, r.code, r.name, p_first, p_last))
    total = _row(data, scope, scope_name, first, last)
    _change(total, _row(data, scope, scope_name, p_first, p_last))
    return League(scope, scope_name, month, first, last, rows, total)
