"""Every DOMAIN.md §4 figure for a scope and a range of bureau days, from merged cells.

Each figure keeps its volume beside its quality ("工作导向决定评估导向"): a rate is returned
with its numerator and denominator, never alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from eventkit.surveystats import WEIGHTING, Dispositions, Respondent, StationSample, estimates

from jingmin_metrics.domain.measures import BUCKETS_MS, STRATA
from jingmin_metrics.figures.select import Cell, cells

ByMeasure = dict[str, list[Cell]]
Pred = Callable[[Cell], bool]


def rate(num: int, den: int) -> dict[str, Any]:
    return {"numerator": num, "denominator": den, "rate": round(num / den, 4) if den else None}


def _is(name: str, *values: str) -> Pred:
    return lambda c: c.dim(name) in values


def _not(p: Pred) -> Pred:
    return lambda c: not p(c)


def _both(a: Pred, b: Pred) -> Pred:
    return lambda c: a(c) and b(c)


RECOVERY = _is("trigger", "service_recovery")
SATISFIED = _is("satisfaction", "satisfied", "basically_satisfied")
# The resident survey's two figures, as the callbacks' (DOMAIN §4): the answers that count.
SURVEY_FIGURES: dict[str, tuple[str, frozenset[str]]] = {
    "satisfaction": ("satisfaction", frozenset({"satisfied", "basically_satisfied"})),
    "security": ("security", frozenset({"safe", "basically_safe"})),
}


class Scope:
    """Sums over the cells of one scope and day range."""

    def __init__(
        self, data: ByMeasure, scopes: Sequence[str], start: str | None, end: str | None
    ) -> None:
        self.data, self.scopes, self.start, self.end = data, list(scopes), start, end

    def each(self, measure: str, where: Pred | None = None) -> list[Cell]:
        return [
            c
            for c in cells(self.data, measure, self.scopes, self.start, self.end)
            if where is None or where(c)
        ]

    def n(self, measure: str, where: Pred | None = None) -> int:
        return sum(c.count for c in self.each(measure, where))

    def latency(self, measure: str, where: Pred | None = None) -> dict[str, Any]:
        """Count, mean and approximate percentiles (upper bound of the fine bucket)."""
        vector = [0] * (2 + len(BUCKETS_MS) + 1)
        for c in self.each(measure, where):
            for i, v in enumerate(c.value):  # type: ignore[arg-type]
                vector[i] += v
        count = vector[0]
        out: dict[str, Any] = {"count": count, "mean_seconds": None}
        if count:
            out["mean_seconds"] = round(vector[1] / count / 1000, 3)
            for q in (0.5, 0.9):
                out[f"p{int(q * 100)}_seconds_at_most"] = _quantile(vector[2:], count, q)
        return out

    def within(self, measure: str, seconds: int) -> dict[str, Any]:
        """Share of a latency at or under a target (a bound of the fine buckets), as the
        Prometheus histogram's `le` bucket over its `_count` gives it."""
        upto = BUCKETS_MS.index(seconds * 1000)
        num = den = 0
        for c in self.each(measure):
            den += c.value[0]  # type: ignore[index]
            num += sum(c.value[2 : 2 + upto + 1])  # type: ignore[index]
        return rate(num, den)

    def by(self, measure: str, dim: str, where: Pred | None = None) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for c in self.each(measure, where):
            out[c.dim(dim)] += c.count
        return dict(sorted(out.items()))


def _quantile(fine: list[int], count: int, q: float) -> float | None:
    seen = 0
    for i, n in enumerate(fine):
        seen += n
        if seen >= q * count:
            return BUCKETS_MS[i] / 1000 if i < len(BUCKETS_MS) else None
    return None


def summary(s: Scope) -> dict[str, Any]:
    """All figures of a scope; volumes beside their quality figures."""
    received = s.n("intake.received")
    closed = s.n("intake.closed")
    open_overdue = s.n("intake.open_overdue")
    answers = s.each("callback.answered", _not(RECOVERY))
    answered = sum(c.count for c in answers)
    satisfied = sum(c.count for c in answers if SATISFIED(c))
    strict = sum(c.count for c in answers if c.dim("satisfaction") == "satisfied")
    secure = sum(c.count for c in answers if c.dim("security") in ("safe", "basically_safe"))
    attempts = s.n("callback.attempted")
    complaints = s.n("complaints.received")
    concluded = s.n("complaints.concluded")
    visits = s.n("visits.attempted")
    return {
        "intake": {
            "received": received,
            "by_kind": s.by("intake.received", "kind"),
            "by_channel": s.by("intake.received", "channel"),
            "dispatch_latency": s.latency("intake.dispatch_latency"),
            # The 110 commander's first question: dispatched within the 60 s target.
            "dispatch_within_60s": s.within("intake.dispatch_latency", 60),
            "arrival_latency": s.latency("intake.arrival_latency"),
            "arrival_on_target": rate(
                s.n("intake.arrival_target", _is("on_target", "true")),
                s.n("intake.arrival_target"),
            ),
            "arrival_on_target_by_area_type": {
                area: rate(
                    s.n(
                        "intake.arrival_target",
                        _both(_is("area_type", area), _is("on_target", "true")),
                    ),
                    total,
                )
                for area, total in s.by("intake.arrival_target", "area_type").items()
            },
            "resolution_time": s.latency("intake.resolution_time"),
            "resolution_time_by_kind": {
                kind: s.latency("intake.resolution_time", _is("kind", kind))
                for kind in s.by("intake.resolution_time", "kind")
            },
            # closed on time / (closed + open and already overdue)
            "on_time": rate(s.n("intake.closed", _is("on_time", "true")), closed + open_overdue),
            "closed": closed,
            "open_overdue": open_overdue,
            # Only services with their visits recorded: the unrecorded ones beside it.
            "one_visit": rate(
                s.n("intake.services_completed", _is("one_visit", "true")),
                s.n("intake.services_completed", _is("one_visit", "true", "false")),
            ),
            "services_unrecorded": s.n("intake.services_completed", _is("one_visit", "unrecorded")),
            "referral": rate(s.n("intake.transferred"), received),
            "transfer_latency": s.latency("intake.transferred"),
            "reopen": rate(s.n("intake.reopened"), closed),
        },
        "callbacks": {
            "satisfaction": rate(satisfied, answered),
            "satisfaction_strict": rate(strict, answered),
            "security": rate(secure, answered),
            "contact": rate(s.n("callback.attempted", _is("outcome", "reached")), attempts),
            "coverage": rate(
                s.n("callback.completed_in_window", _not(RECOVERY)),
                s.n("callback.scheduled", _not(RECOVERY)),
            ),
            "suppressed": s.by("callback.suppressed", "reason"),
            "service_recovery": rate(
                s.n("callback.answered", lambda c: RECOVERY(c) and SATISFIED(c)),
                s.n("callback.answered", RECOVERY),
            ),
        },
        "complaints": {
            "received": complaints,
            "per_1000_cases": round(complaints * 1000 / received, 2) if received else None,
            "by_category": s.by("complaints.received", "category"),
            "substantiation": rate(
                s.n(
                    "complaints.concluded",
                    _is("outcome", "substantiated", "partially_substantiated"),
                ),
                concluded,
            ),
            "acknowledged_on_time": rate(
                s.n("complaints.acknowledgement", _is("on_time", "true")),
                s.n("complaints.acknowledgement"),
            ),
            "concluded_on_time": rate(
                s.n("complaints.conclusion", _is("on_time", "true")),
                s.n("complaints.conclusion"),
            ),
            "reopen": rate(s.n("complaints.reopened"), s.n("complaints.closed")),
            "open_overdue": s.n("complaints.open_overdue"),
        },
        "supervision": {
            "issued": s.n("supervision.issued"),
            "by_type": s.by("supervision.issued", "order_type"),
            # reported on time / (reported + open and already overdue), as intake.on_time:
            # an order never reported back must not leave the rate untouched.
            "reported_on_time": rate(
                s.n("supervision.reported", _is("on_time", "true")),
                s.n("supervision.reported") + s.n("supervision.open_overdue"),
            ),
            "open_overdue": s.n("supervision.open_overdue"),
            "overdue": s.n("supervision.overdue"),
            "escalations": s.n("supervision.escalated"),
            "rectification_orders": s.n("supervision.issued", _is("order_type", "rectification")),
            "inspections": s.n("supervision.inspections"),
            "inspections_by_kind": s.by("supervision.inspections", "kind"),
            "findings_by_severity": s.by("supervision.findings", "severity"),
            "accountability_actions": s.n("supervision.accountability"),
            "accountability_by_kind": s.by("supervision.accountability", "kind"),
        },
        "visits": {
            "attempted": visits,
            "by_programme": s.by("visits.attempted", "programme", _is("outcome", "completed")),
            "by_mode": s.by("visits.attempted", "mode", _is("outcome", "completed")),
            "refusal": rate(
                s.n("visits.attempted", _is("outcome", "refused", "nobody_home")), visits
            ),
            "officers_visiting": rate(len(_visiting_officers(s)), len(_active_officers(s))),
            "issues_raised": s.n("visits.issues"),
            "feedback": s.by("visits.feedback", "feedback"),
        },
        "engagement": {
            "events": s.n("engagement.held"),
            "participants": s.n("engagement.participants"),
            "opinions": s.by("engagement.opinions", "feedback"),
        },
        "survey": survey(s),
    }


def survey(s: Scope) -> dict[str, Any]:
    """The resident survey (民意调查): per wave whose fieldwork starts in the period, the
    scope's stations and their pooled figures (stations as strata), computed from the cells
    by `eventkit.surveystats.estimates`, the arithmetic visits' own estimates use."""
    waves: dict[str, dict[str, Any]] = {}
    for c in s.each("survey.drawn"):
        wave = waves.setdefault(
            c.dim("wave"),
            {"bureau": c.bureau, "period_start": c.day, "period_end": c.dim("period_end"),
             "confidence": float(c.dim("confidence")), "stations": {}},
        )  # fmt: skip
        wave["stations"][c.dim("station")] = {
            "sample_size": c.count, "margins": {}, "dispositions": {}, "respondents": [],
        }  # fmt: skip
        wave.setdefault("attempts", {"by_mode": defaultdict(int), "by_outcome": defaultdict(int)})
        wave.setdefault("completed", {f: defaultdict(int) for f in SURVEY_FIGURES})

    def station(c: Cell) -> dict[str, Any] | None:
        wave = waves.get(c.dim("wave"))
        return wave["stations"].get(c.dim("station")) if wave else None

    for c in s.each("survey.frame"):
        if (st := station(c)) is not None:
            st["margins"].setdefault(c.dim("dimension"), {})[c.dim("category")] = c.count
    for c in s.each("survey.dispositions"):
        if (st := station(c)) is not None:
            st["dispositions"][c.dim("disposition")] = c.count
    for c in s.each("survey.respondents"):
        if (st := station(c)) is not None:
            answers = {k: c.dim(k) for k in SURVEY_FIGURES if c.dim(k)}
            st["respondents"] += [Respondent({k: c.dim(k) for k in STRATA}, answers)] * c.count
            if c.dim("disposition") == "completed":
                for item, answer in answers.items():
                    waves[c.dim("wave")]["completed"][item][answer] += c.count
    for c in s.each("survey.attempts"):
        if station(c) is not None:
            attempts = waves[c.dim("wave")]["attempts"]
            attempts["by_mode"][c.dim("mode")] += c.count
            attempts["by_outcome"][c.dim("outcome")] += c.count
    out = []
    for wave_id, w in sorted(waves.items(), key=lambda kv: (kv[1]["period_start"], kv[0])):
        samples = [
            StationSample(
                code,
                Dispositions(**st["dispositions"]),
                st["respondents"],
                st["margins"],
                {"frame_size": _frame_size(st["margins"]), "sample_size": st["sample_size"]},
            )
            for code, st in w["stations"].items()
        ]
        whole = all(len(scope) <= 6 for scope in s.scopes)
        result = estimates(
            samples,
            SURVEY_FIGURES,
            STRATA,
            unit=w["bureau"] if whole else ",".join(s.scopes),
            level="county" if whole else "station",
            confidence=w["confidence"],
            extra={
                "frame_size": sum(x.extra["frame_size"] for x in samples),
                "sample_size": sum(x.extra["sample_size"] for x in samples),
            },
        )
        out.append(
            {"wave_id": wave_id, "bureau": w["bureau"], "period_start": w["period_start"],
             "period_end": w["period_end"], "confidence": w["confidence"],
             "weighting": WEIGHTING, "strata": list(STRATA), "stations": result["stations"],
             "scope": result["pooled"],
             # Volumes beside the estimates: fieldwork attempts, and completed interviews by
             # answer (unweighted counts; partial interviews are in the estimates' n).
             "attempts": {k: dict(sorted(v.items())) for k, v in w["attempts"].items()},
             "completed_by_answer": {k: dict(sorted(v.items()))
                                     for k, v in w["completed"].items()}}
        )  # fmt: skip
    return {"waves": out, "latest": out[-1]["wave_id"] if out else None}


def _frame_size(margins: dict[str, dict[str, int]]) -> int:
    """The frame's size: any one dimension's categories add up to it."""
    return sum(next(iter(margins.values()), {}).values())


def _visiting_officers(s: Scope) -> set[str]:
    return {
        c.dim("officer")
        for c in s.each("visits.attempted", _is("outcome", "completed"))
        if c.dim("officer")
    }


def _active_officers(s: Scope) -> set[str]:
    """Officers seen doing anything in the scope and period (全警: the denominator)."""
    officers = {c.dim("officer") for c in s.each("intake.received") if c.dim("officer")}
    officers |= {c.dim("officer") for c in s.each("visits.attempted") if c.dim("officer")}
    return officers


def breakdown(s: Scope, dim: str) -> dict[str, dict[str, Any]]:
    """Volume and quality per value of a case dimension (station, channel, kind, ...)."""
    out: dict[str, dict[str, Any]] = {}
    received = s.by("intake.received", dim)
    answers = s.each("callback.answered", _not(RECOVERY))
    closed = s.by("intake.closed", dim)
    on_time = s.by("intake.closed", dim, _is("on_time", "true"))
    overdue = s.by("intake.open_overdue", dim)
    for value in sorted(set(received) | {c.dim(dim) for c in answers}):
        mine = [c for c in answers if c.dim(dim) == value]
        out[value] = {
            "received": received.get(value, 0),
            "satisfaction": rate(
                sum(c.count for c in mine if SATISFIED(c)), sum(c.count for c in mine)
            ),
            "on_time": rate(on_time.get(value, 0), closed.get(value, 0) + overdue.get(value, 0)),
        }
    return out


def top_issues(s: Scope, limit: int = 10) -> dict[str, list[dict[str, Any]]]:
    """Categories ranked by volume, and by dissatisfaction (不满意 answers)."""
    volume = s.by("intake.received", "category")
    answers = s.each("callback.answered", _not(RECOVERY))
    unhappy: dict[str, int] = defaultdict(int)
    answered: dict[str, int] = defaultdict(int)
    for c in answers:
        answered[c.dim("category")] += c.count
        if c.dim("satisfaction") == "dissatisfied":
            unhappy[c.dim("category")] += c.count
    by_volume = sorted(((v, k) for k, v in volume.items() if k), reverse=True)[:limit]
    by_dissatisfaction = sorted(((v, k) for k, v in unhappy.items() if k and v), reverse=True)[
        :limit
    ]
    return {
        "by_volume": [{"category": k, "received": v} for v, k in by_volume],
        "by_dissatisfaction": [
            {"category": k, "dissatisfied": v, "answered": answered[k],
             "share": round(v / answered[k], 4)}
            for v, k in by_dissatisfaction
        ],
    }  # fmt: skip


def equity(s: Scope) -> dict[str, Any]:
    """Satisfaction and complaint rate for local, non-local and vulnerable parties, and the gap.

    Complaints are the headline's set (`complaints.received`: through intake, the complaints
    API or a survey), split by the party category each carries; those without one are
    counted apart, so the groups plus `complaints_party_unknown` make the headline count."""
    groups: dict[str, Any] = {}
    for party in ("local", "non_local", "vulnerable"):
        mine = _is("party_category", party)
        answers = s.each("callback.answered", _both(mine, _not(RECOVERY)))
        received = s.n("intake.received", mine)
        complaints = s.n("complaints.received", mine)
        groups[party] = {
            "satisfaction": rate(
                sum(c.count for c in answers if SATISFIED(c)), sum(c.count for c in answers)
            ),
            "complaints": complaints,
            "complaints_per_1000_cases": round(complaints * 1000 / received, 2)
            if received
            else None,
            "cases": received,
        }
    rates = [
        g["satisfaction"]["rate"] for g in groups.values() if g["satisfaction"]["rate"] is not None
    ]
    return {
        "groups": groups,
        "complaints_party_unknown": s.n("complaints.received", _is("party_category", "")),
        "satisfaction_gap": round(max(rates) - min(rates), 4) if len(rates) > 1 else None,
    }


def officers(s: Scope) -> dict[str, dict[str, Any]]:
    """Per officer of a station (first-contact officer of the cases; visiting officer)."""
    out: dict[str, dict[str, Any]] = {}

    def row(officer: str) -> dict[str, Any]:
        return out.setdefault(
            officer, {"cases": 0, "answered": 0, "satisfied": 0, "visits_completed": 0}
        )

    for c in s.each("intake.received"):
        if c.dim("officer"):
            row(c.dim("officer"))["cases"] += c.count
    for c in s.each("callback.answered", _not(RECOVERY)):
        if c.dim("officer"):
            r = row(c.dim("officer"))
            r["answered"] += c.count
            r["satisfied"] += c.count if SATISFIED(c) else 0
    for c in s.each("visits.attempted", _is("outcome", "completed")):
        if c.dim("officer"):
            row(c.dim("officer"))["visits_completed"] += c.count
    for r in out.values():
        r["satisfaction"] = rate(r.pop("satisfied"), r["answered"])
    return dict(sorted(out.items()))
