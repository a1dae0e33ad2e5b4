"""The report's tables as plain rows of strings, shared by the PDF and the workbook so the
two say the same."""

from __future__ import annotations

from typing import Any

from jingmin_metrics.report import cells
from jingmin_metrics.report.league import HEADLINES, Headline, League, Row

EXTRA = {"intake.one_visit": "未记录走访的服务"}  # shown beside the rate (issue 17 item 2)


def _units(league: League) -> list[tuple[Row, bool]]:
    return [(r, False) for r in league.stations] + [(league.total, True)]


def overview(league: League) -> list[dict[str, Any]]:
    """One row per station and the total: each headline's shown value and its n."""
    return [
        {
            "name": r.name,
            "code": r.code,
            "total": total,
            "cells": [
                {"value": cells.shown(h, r.values[h.key]), "n": r.values[h.key].denominator}
                for h in HEADLINES
            ],
        }
        for r, total in _units(league)
    ]


def detail(league: League, h: Headline) -> dict[str, Any]:
    """The league table of one figure: value, numerator, n, target, rank, change."""
    rows = []
    for r, total in _units(league):
        v = r.values[h.key]
        rows.append({
            "name": r.name, "code": r.code, "total": total,
            "value": cells.shown(h, v),
            # The numerator would give a hidden rate away: hidden with it.
            "numerator": v.numerator if v.shown is not None else cells.DASH,
            "n": v.denominator,
            "rank": cells.DASH if total else cells.rank(v),
            "change": cells.change(h, v),
            "extra": r.services_unrecorded if h.key in EXTRA else "",
        })  # fmt: skip
    return {
        "key": h.key,
        "label": h.label,
        "target": cells.target(h),
        "extra": EXTRA.get(h.key, ""),
        "rows": rows,
    }
