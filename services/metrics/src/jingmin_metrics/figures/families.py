"""The Prometheus families the exporter serves, each with its series budget.

Labels are bureau, station, channel, kind, branch, area type, satisfaction, window, party
category, visit programme or finding severity only (each a closed list); officer, case and
person ids never appear. The budget is per family: the worst case for 100 bureaus of 20
stations each (every label value present) must stay under SERIES_LIMIT in all, so station
level is kept to three families (a volume, satisfaction and its n) and the finer breakdowns
live in the JSON API. Counters and histograms are totals over every event time; the
`_ratio` gauges are event-time windows ending now.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from jingmin_metrics.domain.clock import OFFSET
from jingmin_metrics.domain.measures import BUCKETS_MS
from jingmin_metrics.figures import compute
from jingmin_metrics.figures.select import Cell

# Worst-case label cardinalities used by the budgets (and the budget test).
BUREAUS, STATIONS_PER_BUREAU = 100, 20
KINDS = ("alarm", "help", "consultation", "service", "petition", "opinion", "tip", "complaint")
SATISFACTION = ("satisfied", "basically_satisfied", "dissatisfied")
WINDOWS = {"24h": None, "7d": 7, "30d": 30}
RECOVERY = "service_recovery"
# Equity groups (DOMAIN §3.1 party category); a case or complaint with none is "unknown".
PARTIES = ("local", "non_local", "vulnerable", "unknown")
# Inspection finding severities (the complaints service's Severity).
SEVERITIES = ("observation", "deficiency", "violation")
# Visit programmes (DOMAIN §3.2); a value outside the list is "other" (labels stay bounded).
PROGRAMMES = (
    "aimin", "leadership", "model_officer", "household_survey", "vulnerable",
    "open_evaluation", "three_visits", "other",
)  # fmt: skip

Selector = Callable[[Cell], bool]
Labeler = Callable[[Cell], tuple[str, ...]]


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # counter | histogram | gauge | ratio | windowed (a ratio's numerator as a gauge)
    help: str
    labels: tuple[str, ...]
    budget: int  # series allowed, worst case
    measure: str = ""
    where: Selector = field(default=lambda c: True)
    label: Labeler = field(default=lambda c: (c.bureau,))
    buckets_s: tuple[int, ...] = ()
    # ratio families: numerator selector over the same measure; window (days, None = 24 h)
    numerator: Selector = field(default=lambda c: True)
    # survey families: the value from a bureau's latest wave's pooled block and the figure
    # (satisfaction, security; "" for a family without the `figure` label); None: no series
    read: Callable[[dict[str, Any], str], float | None] | None = None


def _dim(name: str) -> Labeler:
    return lambda c: (c.bureau, c.dim(name))


def _bounded(name: str, values: Sequence[str]) -> Labeler:
    """(bureau, the dimension) with any value outside `values` as the last of them."""

    def label(c: Cell) -> tuple[str, ...]:
        value = c.dim(name)
        return (c.bureau, value if value in values else values[-1])

    return label


def _station(c: Cell) -> tuple[str, ...]:
    return (c.bureau, c.dim("station"))


def _is(name: str, *values: str) -> Selector:
    return lambda c: c.dim(name) in values


def _not_recovery(c: Cell) -> bool:
    return c.dim("trigger") != RECOVERY


def _both(a: Selector, b: Selector) -> Selector:
    return lambda c: a(c) and b(c)


B = BUREAUS
S = BUREAUS * STATIONS_PER_BUREAU
SATISFIED = _is("satisfaction", "satisfied", "basically_satisfied")
SURVEY_FIGURES = tuple(compute.SURVEY_FIGURES)
SURVEY_MEASURES = ("survey.drawn", "survey.frame", "survey.dispositions", "survey.respondents")


def _estimate(part: str) -> Callable[[dict[str, Any], str], float | None]:
    """A weighted estimate's `p`, `low` or `high` (rounded as the JSON API states it)."""
    return lambda block, figure: block[figure]["weighted"][part]


def _survey_n(block: dict[str, Any], figure: str) -> float | None:
    return float(block[figure]["weighted"]["n"])


def _rate(name: str) -> Callable[[dict[str, Any], str], float | None]:
    return lambda block, _figure: block["response_rates"][name]


# Buckets at the targets and around them, so that a p50 or p90 is read between close
# bounds instead of interpolated across minutes or days: the 60 s dispatch target and the
# 5 / 10 / 20 min arrival targets, and 1 to 60 days for resolution (every one is a bound
# of the processors' fine buckets, BUCKETS_MS).
RESPONSE_S = (15, 30, 60, 120, 300, 600, 1200, 1800, 3600)
RESOLUTION_S = (86400, 3 * 86400, 7 * 86400, 15 * 86400, 30 * 86400, 60 * 86400)


def _hist_budget(buckets: Sequence[int], groups: int = B) -> int:
    return groups * (len(buckets) + 3)  # each bucket, +Inf, _sum, _count


FAMILIES: tuple[Family, ...] = (
    # ---- station level: one volume and its quality figure, nothing more
    Family("jingmin_station_cases_received", "counter", "Cases received, by station.",
           ("bureau", "station"), S, "intake.received", label=_station),
    Family("jingmin_station_satisfaction_ratio", "ratio",
           "Share of answers 满意 or 基本满意 over the last 30 days (event time), by station.",
           ("bureau", "station"), S, "callback.answered", where=_not_recovery, label=_station,
           numerator=SATISFIED),
    # Its n, for the league table: a quality figure is never shown without its volume.
    Family("jingmin_station_satisfaction_answered", "windowed",
           "Survey answers over the last 30 days (event time), by station: the satisfaction "
           "ratio's denominator.", ("bureau", "station"), S, "callback.answered",
           where=_not_recovery, label=_station),
    # ---- intake
    Family("jingmin_intake_cases_received", "counter", "Cases received, by kind.",
           ("bureau", "kind"), B * len(KINDS), "intake.received", label=_dim("kind")),
    Family("jingmin_intake_dispatch_latency_seconds", "histogram",
           "First dispatch minus receipt.", ("bureau",), _hist_budget(RESPONSE_S),
           "intake.dispatch_latency", buckets_s=RESPONSE_S),
    Family("jingmin_intake_arrival_latency_seconds", "histogram",
           "First arrival minus first dispatch (targets: urban 5, suburban 10, rural 20 min).",
           ("bureau",), _hist_budget(RESPONSE_S), "intake.arrival_latency",
           buckets_s=RESPONSE_S),
    Family("jingmin_intake_arrivals_on_target", "counter",
           "First arrivals within the bureau's arrival target for the area type.",
           ("bureau",), B, "intake.arrival_target", where=_is("on_target", "true")),
    Family("jingmin_intake_resolution_time_seconds", "histogram",
           "First resolution minus receipt.", ("bureau",), _hist_budget(RESOLUTION_S),
           "intake.resolution_time", buckets_s=RESOLUTION_S),
    Family("jingmin_intake_cases_closed", "counter",
           "Cases with a promise that reached their first outcome.", ("bureau",), B,
           "intake.closed"),
    Family("jingmin_intake_cases_closed_on_time", "counter",
           "Cases that reached their first outcome with no promise breached.", ("bureau",), B,
           "intake.closed", where=_is("on_time", "true")),
    Family("jingmin_intake_open_overdue_cases", "gauge",
           "Open cases with a breached promise still open.", ("bureau",), B,
           "intake.open_overdue"),
    Family("jingmin_intake_services_completed", "counter",
           "Service applications completed.", ("bureau",), B, "intake.services_completed"),
    # 一次办结率 = one_visit / visits_recorded: a service with no visit recorded says nothing
    # about visits, so it is counted apart (unrecorded) instead of as done in one.
    Family("jingmin_intake_services_visits_recorded", "counter",
           "Service applications completed with their visits recorded.", ("bureau",), B,
           "intake.services_completed", where=_is("one_visit", "true", "false")),
    Family("jingmin_intake_services_unrecorded", "counter",
           "Service applications completed with no visit recorded.", ("bureau",), B,
           "intake.services_completed", where=_is("one_visit", "unrecorded")),
    Family("jingmin_intake_services_one_visit", "counter",
           "Service applications completed in one visit (一次办结).", ("bureau",), B,
           "intake.services_completed", where=_is("one_visit", "true")),
    Family("jingmin_intake_cases_transferred", "counter",
           "Cases transferred to another unit or agency (first transfer).", ("bureau",), B,
           "intake.transferred"),
    # ---- callbacks and satisfaction (service-recovery follow-ups counted apart)
    Family("jingmin_callback_answers", "counter", "Survey answers, by satisfaction.",
           ("bureau", "satisfaction"), B * len(SATISFACTION), "callback.answered",
           where=_not_recovery, label=_dim("satisfaction")),
    Family("jingmin_callback_answers_secure", "counter",
           "Survey answers 安全 or 基本安全 (sense of security).", ("bureau",), B,
           "callback.answered",
           where=_both(_not_recovery, _is("security", "safe", "basically_safe"))),
    Family("jingmin_callback_attempts", "counter", "Callback attempts (call or SMS).",
           ("bureau",), B, "callback.attempted"),
    Family("jingmin_callback_attempts_reached", "counter",
           "Callback attempts that reached the person.",
           ("bureau",), B, "callback.attempted", where=_is("outcome", "reached")),
    Family("jingmin_callbacks_scheduled", "counter",
           "Callbacks scheduled by policy (eligible items).", ("bureau",), B,
           "callback.scheduled", where=_not_recovery),
    Family("jingmin_callbacks_completed_in_window", "counter",
           "Scheduled callbacks answered before they expired (by scheduling time).",
           ("bureau",), B, "callback.completed_in_window", where=_not_recovery),
    Family("jingmin_satisfaction_ratio", "ratio",
           "Share of survey answers 满意 or 基本满意 in a rolling event-time window.",
           ("bureau", "window"), B * len(WINDOWS), "callback.answered", where=_not_recovery,
           numerator=SATISFIED),
    # The ratio's numerator and denominator, so that a city or province is pooled
    # (sum / sum) in PromQL: an average of county ratios weighs 10 answers like 10,000.
    Family("jingmin_satisfaction_answered", "windowed",
           "Survey answers in a rolling event-time window (the satisfaction denominator).",
           ("bureau", "window"), B * len(WINDOWS), "callback.answered", where=_not_recovery),
    Family("jingmin_satisfaction_satisfied", "windowed",
           "Survey answers 满意 or 基本满意 in a rolling event-time window (the numerator).",
           ("bureau", "window"), B * len(WINDOWS), "callback.answered", where=_not_recovery,
           numerator=SATISFIED),
    # ---- complaints
    Family("jingmin_complaints_received", "counter", "Complaints received.", ("bureau",), B,
           "complaints.received"),
    Family("jingmin_complaints_concluded", "counter", "Complaints concluded.", ("bureau",), B,
           "complaints.concluded"),
    Family("jingmin_complaints_substantiated", "counter",
           "Complaints concluded substantiated or partially substantiated.", ("bureau",), B,
           "complaints.concluded",
           where=_is("outcome", "substantiated", "partially_substantiated")),
    Family("jingmin_complaints_acknowledgements_due", "counter",
           "Complaint acknowledgements that fell due.", ("bureau",), B,
           "complaints.acknowledgement"),
    Family("jingmin_complaints_acknowledgements_on_time", "counter",
           "Complaints acknowledged within the deadline.", ("bureau",), B,
           "complaints.acknowledgement", where=_is("on_time", "true")),
    Family("jingmin_complaints_conclusions_due", "counter",
           "Complaint conclusions that fell due.", ("bureau",), B, "complaints.conclusion"),
    Family("jingmin_complaints_conclusions_on_time", "counter",
           "Complaints concluded within the (possibly extended) deadline.", ("bureau",), B,
           "complaints.conclusion", where=_is("on_time", "true")),
    Family("jingmin_complaints_open_overdue", "gauge",
           "Complaints with a missed deadline not met since.", ("bureau",), B,
           "complaints.open_overdue"),
    # ---- supervision and service recovery
    Family("jingmin_supervision_orders_issued", "counter", "Supervision orders issued.",
           ("bureau",), B, "supervision.issued"),
    Family("jingmin_supervision_open_overdue_orders", "gauge",
           "Open supervision orders past their deadline.", ("bureau",), B,
           "supervision.open_overdue"),
    Family("jingmin_recovery_followups_answered", "counter",
           "Service-recovery follow-up surveys answered.", ("bureau",), B, "callback.answered",
           where=lambda c: c.dim("trigger") == RECOVERY),
    Family("jingmin_recovery_followups_satisfied", "counter",
           "Service-recovery follow-ups answered 满意 or 基本满意.", ("bureau",), B,
           "callback.answered", where=lambda c: c.dim("trigger") == RECOVERY and SATISFIED(c)),
    Family("jingmin_supervision_reports", "counter", "Supervision orders reported back.",
           ("bureau",), B, "supervision.reported"),
    Family("jingmin_supervision_reports_on_time", "counter",
           "Supervision orders reported back by their deadline.", ("bureau",), B,
           "supervision.reported", where=_is("on_time", "true")),
    Family("jingmin_supervision_escalations", "counter",
           "Supervision orders escalated one level up.", ("bureau",), B,
           "supervision.escalated"),
    Family("jingmin_supervision_rectification_orders", "counter",
           "Rectification orders issued (限期整改).", ("bureau",), B, "supervision.issued",
           where=_is("order_type", "rectification")),
    Family("jingmin_supervision_inspections", "counter",
           "Inspections completed (督察: online, on site, monthly case-file sampling).",
           ("bureau",), B, "supervision.inspections"),
    Family("jingmin_supervision_findings", "counter",
           "Findings of completed inspections, by severity.", ("bureau", "severity"),
           B * len(SEVERITIES), "supervision.findings", label=_bounded("severity", SEVERITIES)),
    Family("jingmin_supervision_accountability_actions", "counter",
           "Accountability actions taken (问责).", ("bureau",), B, "supervision.accountability"),
    # ---- visits
    Family("jingmin_visits_attempted", "counter", "Visit attempts.", ("bureau",), B,
           "visits.attempted"),
    Family("jingmin_visits_refused", "counter", "Visit attempts refused or with nobody home.",
           ("bureau",), B, "visits.attempted", where=_is("outcome", "refused", "nobody_home")),
    Family("jingmin_visits_completed", "counter", "Visits completed, by programme.",
           ("bureau", "programme"), B * len(PROGRAMMES), "visits.attempted",
           where=_is("outcome", "completed"), label=_bounded("programme", PROGRAMMES)),
    Family("jingmin_engagement_events", "counter",
           "Engagement events held (警民恳谈会, 警营开放日...).", ("bureau",), B,
           "engagement.held"),
    Family("jingmin_engagement_participants", "counter",
           "Members of the public at engagement events.", ("bureau",), B,
           "engagement.participants"),
    # ---- equity (差异性执法): the same figures per party category, counted as the headline
    Family("jingmin_party_cases_received", "counter", "Cases received, by party category.",
           ("bureau", "party_category"), B * len(PARTIES), "intake.received",
           label=_bounded("party_category", PARTIES)),
    Family("jingmin_party_answers", "counter",
           "Callback surveys answered (service recovery apart), by party category.",
           ("bureau", "party_category"), B * len(PARTIES), "callback.answered",
           where=_not_recovery, label=_bounded("party_category", PARTIES)),
    Family("jingmin_party_answers_satisfied", "counter",
           "Answers 满意 or 基本满意 (service recovery apart), by party category.",
           ("bureau", "party_category"), B * len(PARTIES), "callback.answered",
           where=_both(_not_recovery, SATISFIED), label=_bounded("party_category", PARTIES)),
    # ---- the resident survey (民意调查): each county's latest wave whose fieldwork has
    # started, pooled over its stations and weighted to the frame; beside the callbacks'
    # satisfaction, never added into it. Estimates are not sums: no city pooling in PromQL.
    Family("jingmin_survey_weighted_ratio", "survey",
           "Resident survey, latest wave: weighted share answering 满意/基本满意 or 安全/基本安全.",
           ("bureau", "figure"), B * len(SURVEY_FIGURES), "survey.drawn", read=_estimate("p")),
    Family("jingmin_survey_weighted_low_ratio", "survey",
           "Resident survey, latest wave: lower bound of the weighted estimate's 95 % interval.",
           ("bureau", "figure"), B * len(SURVEY_FIGURES), "survey.drawn", read=_estimate("low")),
    Family("jingmin_survey_weighted_high_ratio", "survey",
           "Resident survey, latest wave: upper bound of the weighted estimate's 95 % interval.",
           ("bureau", "figure"), B * len(SURVEY_FIGURES), "survey.drawn", read=_estimate("high")),
    Family("jingmin_survey_respondents", "survey",
           "Resident survey, latest wave: respondents who answered the item (the estimate's n).",
           ("bureau", "figure"), B * len(SURVEY_FIGURES), "survey.drawn", read=_survey_n),
    Family("jingmin_survey_response_rr1_ratio", "survey",
           "Resident survey, latest wave: AAPOR response rate RR1.", ("bureau",), B,
           "survey.drawn", read=_rate("rr1")),
    Family("jingmin_survey_response_rr3_ratio", "survey",
           "Resident survey, latest wave: AAPOR response rate RR3 (unknown eligibility × e).",
           ("bureau",), B, "survey.drawn", read=_rate("rr3")),
    Family("jingmin_party_complaints_received", "counter",
           "Complaints received (however filed), by the complainant's party category.",
           ("bureau", "party_category"), B * len(PARTIES), "complaints.received",
           label=_bounded("party_category", PARTIES)),
)  # fmt: skip

SELF_BUDGET = 20  # the exporter's own series (freshness, snapshot state)
# The endpoint's worst case for 100 bureaus of 20 stations (docs/operations/scaling.md
# has the arithmetic): one Prometheus scrapes it every 30 s with room to spare.
SERIES_LIMIT = 20_000


def window_start(now: datetime, window: str) -> tuple[str, int | None]:
    """The first bureau day (and, for 24 h, the first hour) a window covers."""
    local = now.astimezone(UTC) + OFFSET
    days = WINDOWS[window]
    if days is None:
        first = local - timedelta(hours=23)
        return first.date().isoformat(), first.hour
    return (local.date() - timedelta(days=days - 1)).isoformat(), None


def _in_window(cell: Cell, start_day: str, start_hour: int | None) -> bool:
    if cell.day < start_day:
        return False
    if start_hour is not None and cell.day == start_day:
        return int(cell.dim("hour")) >= start_hour
    return True


def collect(
    by_measure: dict[str, list[Cell]],
    now: datetime,
    latest: dict[str, dict[str, Any]] | None = None,
) -> Iterator[Metric]:
    """Every family, from the merged cells (as prometheus_client metric families).
    `latest`: `latest_waves(by_measure, now)` when the caller keeps it between scrapes."""
    # A county served with nothing open overdue has 0 of it, not no series: an absent
    # gauge would blank every figure it is added into (the on-time rate's denominator).
    served = {(c.bureau,) for cells in by_measure.values() for c in cells}
    if latest is None:
        latest = latest_waves(by_measure, now)
    for fam in FAMILIES:
        if fam.kind == "survey":
            yield _survey(fam, latest)
            continue
        source = [c for c in by_measure.get(fam.measure, ()) if fam.where(c)]
        if fam.kind == "counter":
            metric = CounterMetricFamily(fam.name, fam.help, labels=list(fam.labels))
            for labels, total in sorted(_sum(source, fam.label).items()):
                metric.add_metric(list(labels), total)
            yield metric
        elif fam.kind == "gauge":
            gauge = GaugeMetricFamily(fam.name, fam.help, labels=list(fam.labels))
            totals = _sum(source, fam.label)
            if fam.labels == ("bureau",):
                totals = {**dict.fromkeys(served, 0), **totals}
            for labels, total in sorted(totals.items()):
                gauge.add_metric(list(labels), total)
            yield gauge
        elif fam.kind == "histogram":
            yield _histogram(fam, source)
        elif fam.kind == "windowed":
            yield _window_count(fam, source, now)
        else:
            yield _ratio(fam, source, now)


def latest_waves(by_measure: dict[str, list[Cell]], now: datetime) -> dict[str, dict[str, Any]]:
    """Per county, the pooled block of its latest wave (last first fieldwork day, then wave
    id, as the JSON API orders them) whose fieldwork has started by the bureau day of `now`."""
    today = (now.astimezone(UTC) + OFFSET).date().isoformat()
    first: dict[str, str] = {}
    for c in by_measure.get("survey.drawn", ()):
        if c.day <= today and c.day > first.get(c.bureau, ""):
            first[c.bureau] = c.day
    # Only that day's waves are estimated (raking every past wave each scrape is waste),
    # each county from its own cells: one pass over the survey cells, not one per county.
    mine: dict[str, dict[str, list[Cell]]] = defaultdict(lambda: defaultdict(list))
    for measure in SURVEY_MEASURES:
        for c in by_measure.get(measure, ()):
            if first.get(c.bureau) == c.day:
                mine[c.bureau][measure].append(c)
    out: dict[str, dict[str, Any]] = {}
    for bureau, day in sorted(first.items()):
        waves = compute.survey(compute.Scope(dict(mine[bureau]), [bureau], day, day))["waves"]
        if waves:
            out[bureau] = waves[-1]["scope"]
    return out


def _survey(fam: Family, latest: dict[str, dict[str, Any]]) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(fam.name, fam.help, labels=list(fam.labels))
    assert fam.read is not None
    figures = SURVEY_FIGURES if "figure" in fam.labels else ("",)
    for bureau, block in sorted(latest.items()):
        for figure in figures:
            value = fam.read(block, figure)
            if value is not None:
                gauge.add_metric([bureau, figure] if figure else [bureau], value)
    return gauge


def _sum(cells: Iterable[Cell], label: Labeler) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = defaultdict(int)
    for c in cells:
        out[label(c)] += c.count
    return out


def _histogram(fam: Family, cells: list[Cell]) -> HistogramMetricFamily:
    metric = HistogramMetricFamily(fam.name, fam.help, labels=list(fam.labels))
    grouped: dict[tuple[str, ...], list[int]] = {}
    for c in cells:
        vector = grouped.setdefault(fam.label(c), [0] * len(c.value))  # type: ignore[arg-type]
        for i, v in enumerate(c.value):  # type: ignore[arg-type]
            vector[i] += v
    for labels, vector in sorted(grouped.items()):
        fine = vector[2:]
        buckets: list[tuple[str, float]] = []
        for bound in fam.buckets_s:
            upto = BUCKETS_MS.index(bound * 1000)
            buckets.append((str(float(bound)), float(sum(fine[: upto + 1]))))
        buckets.append(("+Inf", float(vector[0])))
        metric.add_metric(list(labels), buckets, vector[1] / 1000.0)
    return metric


def _windowed(
    fam: Family, cells: list[Cell], now: datetime
) -> Iterator[tuple[list[str], int, int]]:
    """(labels, numerator, denominator) per label set and window (30 d when unlabelled)."""
    windows = ["30d"] if "window" not in fam.labels else list(WINDOWS)
    for window in windows:
        start_day, start_hour = window_start(now, window)
        num: dict[tuple[str, ...], int] = defaultdict(int)
        den: dict[tuple[str, ...], int] = defaultdict(int)
        for c in cells:
            if not _in_window(c, start_day, start_hour):
                continue
            key = fam.label(c)
            den[key] += c.count
            if fam.numerator(c):
                num[key] += c.count
        for key in sorted(den):
            if den[key]:
                labels = [*key, window] if "window" in fam.labels else list(key)
                yield labels, num[key], den[key]


def _ratio(fam: Family, cells: list[Cell], now: datetime) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(fam.name, fam.help, labels=list(fam.labels))
    for labels, num, den in _windowed(fam, cells, now):
        gauge.add_metric(labels, num / den)
    return gauge


def _window_count(fam: Family, cells: list[Cell], now: datetime) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(fam.name, fam.help, labels=list(fam.labels))
    for labels, num, _den in _windowed(fam, cells, now):
        gauge.add_metric(labels, float(num))
    return gauge


def total_budget() -> int:
    return sum(f.budget for f in FAMILIES) + SELF_BUDGET
