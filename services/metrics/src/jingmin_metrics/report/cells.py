"""How a figure reads in a report cell (PDF and XLSX alike): small cells as "—"."""

from __future__ import annotations

from jingmin_metrics.report.league import Headline, Value

__all__ = ["DASH", "Value", "change", "rank", "shown", "target"]

DASH = "—"


def shown(h: Headline, v: Value) -> str:
    if v.shown is None:
        return DASH
    return f"{v.shown:.2f}" if h.per_1000 else f"{100 * v.shown:.1f}%"


def target(h: Headline) -> str:
    return DASH if h.target is None else f"≥{100 * h.target:.0f}%"


def change(h: Headline, v: Value) -> str:
    if v.change is None:
        return DASH
    # Shares change in percentage points; a per-1,000 figure in its own unit.
    return f"{v.change:+.2f}" if h.per_1000 else f"{100 * v.change:+.1f}pp"


def rank(v: Value) -> str:
    return DASH if v.rank is None else str(v.rank)
