"""Daily figures per bureau for other agencies (`metrics.daily.public.v1`).

No station, officer, case, person or category appears: only a bureau's day totals by
intake kind and the headline rates. Every figure goes through `disclosure` (small cells
suppressed: DOMAIN.md §4, §6).
"""

from __future__ import annotations

from typing import Any

from jingmin_metrics.domain.cells import NOW
from jingmin_metrics.figures import compute
from jingmin_metrics.figures.disclosure import count, ratio
from jingmin_metrics.figures.select import Cell

TYPE = "jingmin.metrics.DailyFigures.v1"  # = service.DAILY_TYPE
SOURCE = "/jingmin/metrics"


def bureau_days(by_measure: dict[str, list[Cell]]) -> set[tuple[str, str]]:
    return {(c.bureau, c.day) for cells in by_measure.values() for c in cells if c.day != NOW}


def daily(by_measure: dict[str, list[Cell]], bureau: str, day: str) -> dict[str, Any]:
    """The public figures of one bureau day (no generated time: equal inputs, equal bytes)."""
    s = compute.Scope(by_measure, [bureau], day, day)
    not_recovery = lambda c: c.dim("trigger") != "service_recovery"  # noqa: E731
    answers = s.each("callback.answered", not_recovery)
    answered = sum(c.count for c in answers)
    satisfied = sum(c.count for c in answers if compute.SATISFIED(c))
    secure = sum(c.count for c in answers if c.dim("security") in ("safe", "basically_safe"))
    closed = s.n("intake.closed")
    return {
        "bureau": bureau,
        "day": day,
        "cases_received": count(s.n("intake.received")),
        "cases_by_kind": {k: count(n) for k, n in s.by("intake.received", "kind").items()},
        "satisfaction": ratio(satisfied, answered),
        "security": ratio(secure, answered),
        # DOMAIN §4, as on the boards: open cases already overdue count against the rate,
        # here on the day they fell overdue (a day's record is revised when one closes).
        "cases_closed_on_time": ratio(
            s.n("intake.closed", compute._is("on_time", "true")),
            closed + s.n("intake.overdue_open"),
        ),
        "callback_coverage": ratio(
            s.n("callback.completed_in_window", not_recovery),
            s.n("callback.scheduled", not_recovery),
        ),
        "complaints_received": count(s.n("complaints.received")),
        "complaints_substantiated": ratio(
            s.n(
                "complaints.concluded",
                compute._is("outcome", "substantiated", "partially_substantiated"),
            ),
            s.n("complaints.concluded"),
        ),
        "visits_completed": count(s.n("visits.attempted", compute._is("outcome", "completed"))),
        "engagement_events": count(s.n("engagement.held")),
    }
