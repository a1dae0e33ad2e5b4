"""What the processors count: each measure, its kind, its dimensions, its time rule.

A measure is a linear quantity over items: a count, or a latency histogram (count, sum of
milliseconds, bucket counts). Every figure the platform shows (DOMAIN.md §4) is a ratio or
a projection of these, so an item's contribution can be subtracted and re-added exactly
when the item changes, and the oracle can recompute each one with SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    COUNT = "count"  # integer, summed
    HISTOGRAM = "histogram"  # [count, sum_ms, bucket_0, ..., bucket_n, bucket_+Inf]
    GAUGE = "gauge"  # a count of items in a state *now* (no day: it is not an event)


# Upper bounds (milliseconds) of the fine histogram buckets every latency shares. Prometheus
# families pick a subset; the JSON API reports on-target shares and percentiles from all.
BUCKETS_MS: tuple[int, ...] = (
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    1_200_000,
    1_800_000,
    3_600_000,
    7_200_000,
    14_400_000,
    28_800_000,
    86_400_000,
    259_200_000,
    604_800_000,
    1_296_000_000,
    2_592_000_000,
    5_184_000_000,
)


def bucket_index(ms: int) -> int:
    """The fine bucket an observation falls in (len(BUCKETS_MS) is +Inf); le is inclusive."""
    for i, bound in enumerate(BUCKETS_MS):
        if ms <= bound:
            return i
    return len(BUCKETS_MS)


HIST_WIDTH = 2 + len(BUCKETS_MS) + 1

# Dimensions an intake-rooted observation carries (the unit, how and what came in, who owns
# it). `officer` is the first-contact officer (首问负责制): drill-down only, never a label.
CASE_DIMS = (
    "station",
    "channel",
    "kind",
    "branch",
    "area_type",
    "party_category",
    "category",
    "officer",
    "hour",
)
CALLBACK_DIMS = (*CASE_DIMS, "trigger")
# party_category: the complainant's, when the complaints service knows it (blank if not), so
# the equity rates count the same complaints as the headline rate.
COMPLAINT_DIMS = ("station", "channel", "category", "level", "party_category", "hour")
ORDER_DIMS = ("station", "order_type", "item_type", "level", "hour")
INSPECTION_DIMS = ("station", "kind", "hour")
ACCOUNTABILITY_DIMS = ("station", "kind", "basis_type", "hour")
VISIT_DIMS = ("station", "programme", "mode", "area_type", "officer", "hour")
ENGAGEMENT_DIMS = ("station", "type", "venue", "hour")
ISSUE_DIMS = ("station", "source_type", "kind", "category", "hour")
# A survey wave's cells: per station and wave, on the wave's first fieldwork day (its
# estimates are of the whole wave, so its cells cannot be split over days).
SURVEY_DIMS = ("station", "wave")
# The weighting cell of a respondent, in the order raking visits the frame's margins.
STRATA = ("age_band", "sex", "residence")


@dataclass(frozen=True)
class Measure:
    name: str
    kind: Kind
    dims: tuple[str, ...]
    time_rule: str
    description: str


def _m(name: str, kind: Kind, dims: tuple[str, ...], time_rule: str, description: str) -> Measure:
    return Measure(name, kind, dims, time_rule, description)


MEASURES: dict[str, Measure] = {
    m.name: m
    for m in (
        _m(
            "intake.received",
            Kind.COUNT,
            CASE_DIMS,
            "CaseReceived",
            "Cases received.",
        ),
        _m(
            "intake.dispatch_latency",
            Kind.HISTOGRAM,
            CASE_DIMS,
            "first CaseDispatched",
            "First dispatch − receipt.",
        ),
        _m(
            "intake.arrival_latency",
            Kind.HISTOGRAM,
            CASE_DIMS,
            "first ArrivedOnScene",
            "First arrival − first dispatch.",
        ),
        _m(
            "intake.arrival_target",
            Kind.COUNT,
            (*CASE_DIMS, "on_target"),
            "first ArrivedOnScene",
            "First arrivals that had an arrival target (the bureau's, by area type), split by"
            " whether they met it.",
        ),
        _m(
            "intake.resolution_time",
            Kind.HISTOGRAM,
            CASE_DIMS,
            "first CaseResolved",
            "First resolution − receipt.",
        ),
        _m(
            "intake.closed",
            Kind.COUNT,
            (*CASE_DIMS, "on_time"),
            "first outcome",
            "Cases with at least one promise that reached their first outcome (resolved,"
            " transferred, escalated, rejected); on time when no promise was breached before it.",
        ),
        _m(
            "intake.open_overdue",
            Kind.GAUGE,
            CASE_DIMS[:-1],
            "now",
            "Open cases with a breached promise that is still open.",
        ),
        _m(
            "intake.overdue_open",
            Kind.COUNT,
            CASE_DIMS,
            "first DeadlineBreached still open",
            "The cases of intake.open_overdue, on the day of their first breach still open: the"
            " open-and-overdue part of a day's on-time denominator (public daily topic).",
        ),
        _m(
            "intake.services_completed",
            Kind.COUNT,
            (*CASE_DIMS, "one_visit"),
            "first CaseResolved of a service case",
            "Service applications completed, split by whether one visit sufficed (一次办结):"
            " true, false, or unrecorded (no service visit recorded before it).",
        ),
        _m(
            "intake.transferred",
            Kind.HISTOGRAM,
            (*CASE_DIMS, "target_type"),
            "first CaseTransferred",
            "Cases transferred; latency = first transfer − first contact (receipt if none).",
        ),
        _m(
            "intake.reopened",
            Kind.COUNT,
            CASE_DIMS,
            "each CaseReopened",
            "Reopenings.",
        ),
        _m(
            "callback.scheduled",
            Kind.COUNT,
            (*CALLBACK_DIMS, "mode"),
            "CallbackScheduled",
            "Callbacks scheduled by policy (the items eligible for a callback).",
        ),
        _m(
            "callback.suppressed",
            Kind.COUNT,
            (*CALLBACK_DIMS, "reason"),
            "CallbackSuppressed",
            "Callbacks suppressed, with the reason.",
        ),
        _m(
            "callback.completed_in_window",
            Kind.COUNT,
            CALLBACK_DIMS,
            "CallbackScheduled (the cohort)",
            "Scheduled callbacks answered no later than their expiry.",
        ),
        _m(
            "callback.attempted",
            Kind.COUNT,
            (*CALLBACK_DIMS, "outcome"),
            "each CallbackAttempted",
            "Call or SMS attempts, by outcome (reached, unreachable, declined).",
        ),
        _m(
            "callback.answered",
            Kind.COUNT,
            (*CALLBACK_DIMS, "satisfaction", "security"),
            "CallbackAnswered",
            "Survey answers by satisfaction and sense of security.",
        ),
        _m(
            "complaints.received",
            Kind.COUNT,
            COMPLAINT_DIMS,
            "ComplaintReceived",
            "Complaints about police conduct received.",
        ),
        _m(
            "complaints.acknowledgement",
            Kind.COUNT,
            (*COMPLAINT_DIMS, "on_time"),
            "first of ComplaintAcknowledged / ComplaintOverdue(acknowledgement)",
            "Acknowledgements that fell due; on time when the complaint was acknowledged before"
            " an overdue was recorded.",
        ),
        _m(
            "complaints.conclusion",
            Kind.COUNT,
            (*COMPLAINT_DIMS, "on_time"),
            "first of ComplaintConcluded / ComplaintOverdue(conclusion)",
            "Conclusions that fell due; on time when concluded by the (possibly extended)"
            " deadline before any overdue was recorded.",
        ),
        _m(
            "complaints.concluded",
            Kind.COUNT,
            (*COMPLAINT_DIMS, "outcome"),
            "first ComplaintConcluded",
            "Complaints concluded, by outcome (substantiation).",
        ),
        _m(
            "complaints.closed",
            Kind.COUNT,
            (*COMPLAINT_DIMS, "fixed"),
            "each ComplaintClosed",
            "Closures, split by whether the problem was put right.",
        ),
        _m(
            "complaints.reopened",
            Kind.COUNT,
            COMPLAINT_DIMS,
            "each ComplaintReopened",
            "Closures disputed (reopened).",
        ),
        _m(
            "complaints.escalated",
            Kind.COUNT,
            (*COMPLAINT_DIMS, "deadline"),
            "each ComplaintEscalated",
            "Escalations one level up after a missed deadline.",
        ),
        _m(
            "complaints.open_overdue",
            Kind.GAUGE,
            COMPLAINT_DIMS[:-1],
            "now",
            "Complaints with a missed deadline not met since.",
        ),
        _m(
            "supervision.issued",
            Kind.COUNT,
            ORDER_DIMS,
            "OrderIssued",
            "Supervision orders issued (督办), by type and the item they are about.",
        ),
        _m(
            "supervision.reported",
            Kind.COUNT,
            (*ORDER_DIMS, "on_time"),
            "each OrderReportedBack",
            "Reports back, on time or late.",
        ),
        _m(
            "supervision.closed",
            Kind.COUNT,
            (*ORDER_DIMS, "verdict"),
            "each OrderClosed",
            "Orders closed, by verdict.",
        ),
        _m(
            "supervision.overdue",
            Kind.COUNT,
            ORDER_DIMS,
            "each OrderOverdue",
            "Order deadlines missed.",
        ),
        _m(
            "supervision.escalated",
            Kind.COUNT,
            ORDER_DIMS,
            "each OrderEscalated",
            "Orders escalated one level up.",
        ),
        _m(
            "supervision.open_overdue",
            Kind.GAUGE,
            ORDER_DIMS[:-1],
            "now",
            "Open orders past their deadline (not reported back, escalated, returned or closed"
            " since).",
        ),
        _m(
            "supervision.inspections",
            Kind.COUNT,
            INSPECTION_DIMS,
            "InspectionCompleted",
            "Inspections completed (督察: online, on site, monthly case-file sampling), by the"
            " kind InspectionStarted gave.",
        ),
        _m(
            "supervision.findings",
            Kind.COUNT,
            (*INSPECTION_DIMS, "severity"),
            "InspectionCompleted",
            "Findings of completed inspections by severity (observation, deficiency, violation),"
            " from the completed inspection's counts.",
        ),
        _m(
            "supervision.accountability",
            Kind.COUNT,
            ACCOUNTABILITY_DIMS,
            "each AccountabilityActionTaken",
            "Accountability actions (问责: admonishment talk, leader accountability,"
            " administrative fault, warning education), by what they rest on.",
        ),
        _m(
            "visits.attempted",
            Kind.COUNT,
            (*VISIT_DIMS, "outcome"),
            "each VisitCompleted / VisitFailed",
            "Visit attempts: completed, nobody home, refused.",
        ),
        _m(
            "visits.feedback",
            Kind.COUNT,
            (*VISIT_DIMS, "feedback"),
            "each VisitCompleted",
            "Completed visits by the household's feedback.",
        ),
        _m(
            "visits.issues",
            Kind.COUNT,
            ISSUE_DIMS,
            "IssueRaised",
            "Issues raised by citizens in visits and engagement events (each becomes a case).",
        ),
        _m(
            "engagement.held",
            Kind.COUNT,
            ENGAGEMENT_DIMS,
            "EngagementHeld",
            "Engagement events held (恳谈会, 开放日, ...).",
        ),
        _m(
            "engagement.participants",
            Kind.COUNT,
            ENGAGEMENT_DIMS,
            "EngagementHeld",
            "Members of the public present at engagement events (a sum).",
        ),
        _m(
            "engagement.opinions",
            Kind.COUNT,
            (*ENGAGEMENT_DIMS, "feedback"),
            "each OpinionRecorded",
            "Opinions recorded at engagement events, by feedback.",
        ),
        _m(
            "survey.drawn",
            Kind.COUNT,
            (*SURVEY_DIMS, "period_end", "confidence"),
            "the wave's first fieldwork day",
            "Units drawn into a station's sample of a survey wave (民意调查); the wave's last"
            " fieldwork day and confidence level ride along.",
        ),
        _m(
            "survey.frame",
            Kind.COUNT,
            (*SURVEY_DIMS, "dimension", "category"),
            "the wave's first fieldwork day",
            "People in a station's sample frame per category of each weighting dimension (age"
            " band, sex, residence): the margins raking matches.",
        ),
        _m(
            "survey.dispositions",
            Kind.COUNT,
            (*SURVEY_DIMS, "disposition"),
            "the wave's first fieldwork day",
            "Sampled units by final disposition (AAPOR: the most informative attempt; never"
            " attempted = unknown eligibility, opted out = refused).",
        ),
        _m(
            "survey.attempts",
            Kind.COUNT,
            (*SURVEY_DIMS, "mode", "outcome"),
            "the wave's first fieldwork day",
            "Fieldwork attempts by mode and outcome.",
        ),
        _m(
            "survey.respondents",
            Kind.COUNT,
            (*SURVEY_DIMS, "disposition", *STRATA, "satisfaction", "security"),
            "the wave's first fieldwork day",
            "Interviewed units (completed or partial) by weighting cell and answer (blank: not"
            " answered).",
        ),
    )
}


def zero(measure: Measure) -> int | list[int]:
    return [0] * HIST_WIDTH if measure.kind is Kind.HISTOGRAM else 0
