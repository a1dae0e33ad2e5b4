"""The Visit aggregate (走访): an officer's planned visit to a household, business or institution.

Scheduled, then completed (with feedback, opinions and issues raised) or failed (nobody home,
refused); a failed or pending visit can be rescheduled. Every issue raised becomes its own
`IssueRaised` fact, which the intake service turns into a `field` case.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jingmin_visits.domain.errors import IllegalTransition, InvalidCommand
from jingmin_visits.domain.facts import Fact, check_time
from jingmin_visits.domain.vocabulary import Feedback, VisitOutcome, VisitStatus

MAX_ISSUES = 20

# Stored event names: stable, explicit, never derived from class or module names.
SCHEDULED = "VisitScheduled"
COMPLETED = "VisitCompleted"
FAILED = "VisitFailed"
RESCHEDULED = "VisitRescheduled"
ISSUE_RAISED = "IssueRaised"

EVENT_TYPES = (SCHEDULED, COMPLETED, FAILED, RESCHEDULED, ISSUE_RAISED)

# Issue ids are derived, not random: the n-th issue of a source has one id forever, so
# intake can use it as the case id and a replay can never open a second case.
_ISSUE_NAMESPACE = uuid.UUID("5b0c4a52-3f0e-4c55-9d1b-6a1c7e0e2f10")


def issue_id(source_id: str, number: int) -> str:
    return uuid.uuid5(_ISSUE_NAMESPACE, f"{source_id}#{number}").hex


@dataclass(frozen=True)
class Issue:
    """An issue a citizen raised; `summary` arrives already encrypted under the subject."""

    kind: str
    area_type: str
    category: str | None = None
    branch: str | None = None
    summary: Mapping[str, str] | None = None


def issue_facts(
    source_type: str,
    source_id: str,
    first_number: int,
    issues: Sequence[Issue],
    context: Mapping[str, Any],
    occurred_at: datetime,
) -> list[Fact]:
    """One `IssueRaised` per issue, numbered on from the issues the source already raised."""
    if len(issues) > MAX_ISSUES:
        raise InvalidCommand(f"at most {MAX_ISSUES} issues per record")
    facts = []
    for offset, issue in enumerate(issues):
        data: dict[str, Any] = {
            "issue_id": issue_id(source_id, first_number + offset),
            "issue_number": first_number + offset,
            "source_type": source_type,
            "source_id": source_id,
            "kind": issue.kind,
            "area_type": issue.area_type,
            **{k: v for k, v in context.items() if v is not None},
        }
        for key in ("category", "branch"):
            value = getattr(issue, key)
            if value is not None:
                data[key] = value
        if issue.summary is not None:
            data["summary"] = dict(issue.summary)
        facts.append(Fact(ISSUE_RAISED, data, occurred_at))
    return facts


@dataclass
class Visit:
    visit_id: str
    version: int = 0
    status: VisitStatus | None = None
    bureau: str = ""
    station: str = ""
    programme: str = ""
    mode: str = ""
    officer_id: str = ""
    subject_id: str | None = None
    area_type: str = ""
    planned_for: datetime | None = None
    attempts: int = 0
    issues_raised: int = 0
    last_occurred_at: datetime | None = None

    @classmethod
    def from_history(
        cls, visit_id: str, history: Iterable[tuple[str, Mapping[str, Any], datetime]]
    ) -> Visit:
        visit = cls(visit_id)
        for type_, data, occurred_at in history:
            visit.apply(Fact(type_, dict(data), occurred_at))
        return visit

    def apply(self, fact: Fact) -> None:
        self.version += 1
        d = fact.data
        if fact.type == ISSUE_RAISED:
            self.issues_raised += 1
            return  # follows the completion it belongs to; does not move the visit
        self.last_occurred_at = fact.occurred_at
        if fact.type == SCHEDULED:
            self.status = VisitStatus.SCHEDULED
            self.bureau, self.station = d["bureau"], d["station"]
            self.programme, self.officer_id = d["programme"], d["officer_id"]
            self.mode = d["mode"]
            self.area_type = d["area_type"]
            self.subject_id = d.get("subject_id")
            self.planned_for = datetime.fromisoformat(d["planned_for"])
        elif fact.type == RESCHEDULED:
            self.status = VisitStatus.SCHEDULED
            self.planned_for = datetime.fromisoformat(d["planned_for"])
            self.officer_id = d.get("officer_id", self.officer_id)
        elif fact.type == COMPLETED:
            self.status = VisitStatus.COMPLETED
            self.attempts += 1
        elif fact.type == FAILED:
            self.status = VisitStatus.FAILED
            self.attempts += 1

    # ---- decisions ---------------------------------------------------------------------

    def schedule(self, data: Mapping[str, Any], occurred_at: datetime, now: datetime) -> list[Fact]:
        if self.status is not None:
            raise IllegalTransition(f"visit {self.visit_id} already exists")
        check_time(occurred_at, now, None, "visit")
        if not str(data["station"]).startswith(str(data["bureau"])):
            raise InvalidCommand("station must belong to the bureau (its code starts with it)")
        return [Fact(SCHEDULED, dict(data), occurred_at)]

    def _require(self, allowed: Iterable[VisitStatus], action: str) -> None:
        if self.status is None:
            raise IllegalTransition(f"visit {self.visit_id} does not exist")
        if self.status not in allowed:
            raise IllegalTransition(f"cannot {action} a visit that is {self.status.value}")

    def complete(
        self,
        feedback: Feedback,
        mode: str,
        opinions: Mapping[str, str] | None,
        issues: Sequence[Issue],
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        """Completed, with the household's feedback class, opinions and issues raised."""
        self._require((VisitStatus.SCHEDULED,), "complete")
        check_time(occurred_at, now, self.last_occurred_at, "visit")
        data: dict[str, Any] = {
            "outcome": VisitOutcome.COMPLETED.value,
            "feedback": Feedback(feedback).value,
            "mode": mode,
            "attempt": self.attempts + 1,
            "issues_count": len(issues),
            "has_opinions": opinions is not None,
        }
        if opinions is not None:
            data["opinions"] = dict(opinions)
        context = {
            "programme": self.programme,
            "raised_by": self.officer_id,
            "subject_id": self.subject_id,
        }
        raised = issue_facts(
            "visit", self.visit_id, self.issues_raised + 1, issues, context, occurred_at
        )
        return [Fact(COMPLETED, data, occurred_at), *raised]

    def fail(
        self,
        outcome: VisitOutcome,
        note: Mapping[str, str] | None,
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        """Nobody home (敲不开门) or refused (进不去屋、唠不上嗑): recorded, never hidden."""
        self._require((VisitStatus.SCHEDULED,), "record a failed attempt on")
        if VisitOutcome(outcome) == VisitOutcome.COMPLETED:
            raise InvalidCommand("a failed visit is nobody_home or refused")
        check_time(occurred_at, now, self.last_occurred_at, "visit")
        data: dict[str, Any] = {
            "outcome": VisitOutcome(outcome).value,
            "attempt": self.attempts + 1,
        }
        if note is not None:
            data["note"] = dict(note)
        return [Fact(FAILED, data, occurred_at)]

    def reschedule(
        self,
        planned_for: datetime,
        reason: str,
        officer_id: str | None,
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        self._require((VisitStatus.SCHEDULED, VisitStatus.FAILED), "reschedule")
        check_time(occurred_at, now, self.last_occurred_at, "visit")
        if planned_for < occurred_at:
            raise InvalidCommand("a visit is rescheduled to a time after the decision")
        data: dict[str, Any] = {"planned_for": planned_for.isoformat(), "reason": reason}
        if officer_id is not None:
            data["officer_id"] = officer_id
        return [Fact(RESCHEDULED, data, occurred_at)]
