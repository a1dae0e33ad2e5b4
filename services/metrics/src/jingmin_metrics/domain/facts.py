"""Compact facts: the few fields of each integration event the figures need.

An item's state keeps one fact per (stream, version). Events are immutable, so two copies
of the same fact are equal, and keeping facts in a set-like map makes redelivery, replay
and merging of state written by two workers harmless (see `item.py`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jingmin_metrics.domain.clock import parse_us

Fact = dict[str, Any]

INTAKE_TOPIC = "intake.case.events.v1"
CALLBACK_TOPIC = "visits.callback.events.v1"
VISIT_TOPIC = "visits.visit.events.v1"
COMPLAINT_TOPIC = "complaints.complaint.events.v1"
SUPERVISION_TOPIC = "complaints.supervision.events.v1"
SURVEY_TOPIC = "visits.survey.events.v1"

_CALLBACK_ID = re.compile(r"^cb-([0-9a-f]{32})-[a-z_]{1,32}$")


def _dues(data: Mapping[str, Any]) -> dict[str, int]:
    return {name: parse_us(due) for name, due in (data.get("deadlines") or {}).items()}


def _keep(*names: str) -> Callable[[Mapping[str, Any]], Fact]:
    def extract(data: Mapping[str, Any]) -> Fact:
        return {n: data[n] for n in names if data.get(n) is not None}

    return extract


def _with_dues(*names: str) -> Callable[[Mapping[str, Any]], Fact]:
    keep = _keep(*names)

    def extract(data: Mapping[str, Any]) -> Fact:
        fact = keep(data)
        dues = _dues(data)
        if dues:
            fact["dues"] = dues
        return fact

    return extract


def _breach(data: Mapping[str, Any]) -> Fact:
    return {"deadline": data["deadline"], "due": parse_us(data["due_at"])}


def _with_due(*names: str) -> Callable[[Mapping[str, Any]], Fact]:
    keep = _keep(*names)

    def extract(data: Mapping[str, Any]) -> Fact:
        fact = keep(data)
        if data.get("due_at"):
            fact["due"] = parse_us(data["due_at"])
        return fact

    return extract


def _scheduled(data: Mapping[str, Any]) -> Fact:
    fact = _keep("trigger", "mode", "case_id")(data)
    fact["expires"] = parse_us(data["expires_at"])
    return fact


# The answers the survey figures count (DOMAIN §4's two headline items); the others stay out.
SURVEY_ITEMS = ("satisfaction", "security")


def _answers(value: Any) -> dict[str, str]:
    return {k: v for k, v in (value or {}).items() if k in SURVEY_ITEMS}


def _survey_attempt(data: Mapping[str, Any]) -> Fact:
    fact = _keep("mode", "outcome", "previous_disposition", "disposition", "stratum")(data)
    for name in ("answers", "previous_answers"):
        if data.get(name) is not None:
            fact[name] = _answers(data[name])
    return fact


@dataclass(frozen=True)
class EventRule:
    """How one CloudEvents type becomes a fact, and which item it belongs to."""

    short: str
    extract: Callable[[Mapping[str, Any]], Fact]


# Keyed by the CloudEvents type. A type not listed here is not a metrics input (it is
# acknowledged and skipped, so a producer's new event types never stall the processors).
RULES: dict[str, EventRule] = {
    "jingmin.intake.CaseReceived.v1": EventRule(
        "received",
        _with_dues(
            "channel", "kind", "branch", "area_type", "party_category", "category", "priority"
        ),
    ),
    "jingmin.intake.FirstContactAssigned.v1": EventRule(
        "first_contact", _with_dues("officer_id", "in_remit")
    ),
    "jingmin.intake.CaseDispatched.v1": EventRule("dispatched", _with_dues()),
    "jingmin.intake.ArrivedOnScene.v1": EventRule("arrived", _keep()),
    "jingmin.intake.ServiceApplicationRecorded.v1": EventRule(
        "service_visit", _with_dues("visit_number")
    ),
    "jingmin.intake.CaseTransferred.v1": EventRule("transferred", _keep("target_type")),
    "jingmin.intake.CaseEscalated.v1": EventRule("escalated", _keep()),
    "jingmin.intake.CaseResolved.v1": EventRule("resolved", _keep("one_visit")),
    "jingmin.intake.CaseRejected.v1": EventRule("rejected", _keep("reason")),
    "jingmin.intake.CaseReopened.v1": EventRule("reopened", _with_dues()),
    "jingmin.intake.CaseClosed.v1": EventRule("closed", _keep()),
    "jingmin.intake.DeadlineBreached.v1": EventRule("breached", _breach),
    "jingmin.visits.CallbackScheduled.v1": EventRule("cb_scheduled", _scheduled),
    "jingmin.visits.CallbackSuppressed.v1": EventRule(
        "cb_suppressed", _keep("trigger", "reason", "case_id")
    ),
    "jingmin.visits.CallbackAttempted.v1": EventRule("cb_attempted", _keep("outcome")),
    "jingmin.visits.CallbackAnswered.v1": EventRule(
        "cb_answered", _keep("satisfaction", "security", "case_id")
    ),
    "jingmin.visits.CallbackExpired.v1": EventRule("cb_expired", _keep()),
    "jingmin.visits.VisitScheduled.v1": EventRule(
        "v_scheduled", _keep("programme", "mode", "target_type", "area_type", "officer_id")
    ),
    "jingmin.visits.VisitCompleted.v1": EventRule(
        "v_completed", _keep("mode", "feedback", "issues_count")
    ),
    "jingmin.visits.VisitFailed.v1": EventRule("v_failed", _keep("outcome")),
    "jingmin.visits.EngagementHeld.v1": EventRule("e_held", _keep("type", "venue", "participants")),
    "jingmin.visits.OpinionRecorded.v1": EventRule("e_opinion", _keep("feedback")),
    "jingmin.visits.IssueRaised.v1": EventRule("issue", _keep("source_type", "kind", "category")),
    "jingmin.visits.SurveyWaveDefined.v1": EventRule(
        "s_defined", _keep("period_start", "period_end", "confidence")
    ),
    "jingmin.visits.SurveyFrameImported.v1": EventRule("s_frame", _keep("part", "margins")),
    "jingmin.visits.SurveySampleDrawn.v1": EventRule(
        "s_drawn", _keep("frame_size", "sample_size", "do_not_contact_count")
    ),
    "jingmin.visits.SurveyAttemptRecorded.v1": EventRule("s_attempt", _survey_attempt),
    "jingmin.complaints.ComplaintReceived.v1": EventRule(
        "c_received", _with_dues("channel", "category", "level", "party_category")
    ),
    "jingmin.complaints.ComplaintAcknowledged.v1": EventRule("c_acknowledged", _with_dues()),
    "jingmin.complaints.InvestigationExtended.v1": EventRule("c_extended", _with_dues()),
    "jingmin.complaints.ComplaintConcluded.v1": EventRule(
        "c_concluded", _keep("outcome", "on_time")
    ),
    "jingmin.complaints.ComplaintClosed.v1": EventRule("c_closed", _keep("fixed")),
    "jingmin.complaints.ComplaintReopened.v1": EventRule("c_reopened", _with_dues("reason")),
    "jingmin.complaints.ComplaintOverdue.v1": EventRule("c_overdue", _keep("deadline")),
    "jingmin.complaints.ComplaintEscalated.v1": EventRule("c_escalated", _keep("deadline")),
    "jingmin.supervision.OrderIssued.v1": EventRule(
        "o_issued", _with_due("order_type", "item_type", "level")
    ),
    "jingmin.supervision.OrderReportedBack.v1": EventRule("o_reported", _keep("on_time")),
    "jingmin.supervision.OrderReturned.v1": EventRule("o_returned", _with_due()),
    "jingmin.supervision.OrderClosed.v1": EventRule("o_closed", _keep("verdict")),
    "jingmin.supervision.OrderOverdue.v1": EventRule("o_overdue", _keep("level")),
    "jingmin.supervision.OrderEscalated.v1": EventRule("o_escalated", _with_due("to_level")),
    "jingmin.supervision.InspectionStarted.v1": EventRule("i_started", _keep("kind")),
    "jingmin.supervision.InspectionCompleted.v1": EventRule(
        "i_completed", _keep("findings", "deficiencies", "violations")
    ),
    "jingmin.supervision.AccountabilityActionTaken.v1": EventRule(
        "a_taken", _keep("kind", "basis_type")
    ),
}


def callback_root(callback_id: str, data: Mapping[str, Any]) -> str:
    """The item a callback belongs to: the case (or complaint) it follows.

    `case_id` when the event carries it, else the id inside `cb-<item id>-<trigger>`; the
    callback stream's events then join the item's own on one partition.
    """
    case_id = data.get("case_id")
    if isinstance(case_id, str) and case_id:
        return case_id
    match = _CALLBACK_ID.match(callback_id)
    if match is None:
        raise ValueError(f"callback id {callback_id!r} does not name the item it follows")
    return match.group(1)


def make_fact(
    ce_type: str, data: Mapping[str, Any], occurred_at: str, bureau: str, station: str
) -> Fact | None:
    """The compact fact of one event, or None when metrics do not use this type."""
    rule = RULES.get(ce_type)
    if rule is None:
        return None
    fact = rule.extract(data)
    fact["t"] = rule.short
    fact["at"] = parse_us(occurred_at)
    fact["b"] = bureau
    fact["st"] = station
    return fact
