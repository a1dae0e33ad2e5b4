"""The Complaint aggregate: one complaint about police conduct, from receipt to closure."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from jingmin_complaints.domain.common import (
    DeadlineState,
    Fact,
    History,
    check_time,
    iso,
    parse,
    require,
)
from jingmin_complaints.domain.errors import ConflictOfInterest, IllegalTransition, InvalidCommand
from jingmin_complaints.domain.policy import ComplaintPolicy
from jingmin_complaints.domain.units import next_level, same_unit, unit_at
from jingmin_complaints.domain.vocabulary import (
    SUBSTANTIATED,
    Deadline,
    Level,
    Outcome,
    Status,
)

# Stored event names: stable, explicit, never derived from class or module names.
RECEIVED = "ComplaintReceived"
ACKNOWLEDGED = "ComplaintAcknowledged"
ASSIGNED = "InvestigatorAssigned"
EXTENDED = "InvestigationExtended"
CONCLUDED = "ComplaintConcluded"
REPLIED = "ComplaintReplySent"
CLOSED = "ComplaintClosed"
REOPENED = "ComplaintReopened"
REMEDIED = "ComplaintRemedied"
OVERDUE = "ComplaintOverdue"
ESCALATED = "ComplaintEscalated"

EVENT_TYPES = (
    RECEIVED,
    ACKNOWLEDGED,
    ASSIGNED,
    EXTENDED,
    CONCLUDED,
    REPLIED,
    CLOSED,
    REOPENED,
    REMEDIED,
    OVERDUE,
    ESCALATED,
)

_LEVELS = [Level.STATION, Level.BUREAU, Level.CITY]
_WORKING = frozenset({Status.ACKNOWLEDGED, Status.INVESTIGATING, Status.REOPENED})
_UNFINISHED = frozenset({Status.RECEIVED, *_WORKING})


@dataclass
class Complaint:
    STREAM_TYPE: ClassVar[str] = "complaint"
    ID_FIELD: ClassVar[str] = "complaint_id"
    NOUN: ClassVar[str] = "complaint"

    complaint_id: str
    version: int = 0
    status: Status | None = None
    bureau: str = ""
    station: str = ""
    subject_unit: str = ""
    subject_officer: str | None = None
    channel: str = ""
    category: str = ""
    subject_id: str | None = None
    anonymous: bool = False
    level: Level = Level.STATION
    investigator_id: str | None = None
    investigator_unit: str | None = None
    extended: bool = False
    outcome: str | None = None
    on_time: bool | None = None
    fixed: bool = False
    received_at: datetime | None = None
    acknowledged_at: datetime | None = None
    concluded_at: datetime | None = None
    closed_at: datetime | None = None
    last_occurred_at: datetime | None = None
    reopened: int = 0
    receipt_hash: str | None = None
    intake_case_id: str | None = None
    callback_id: str | None = None
    deadlines: dict[str, DeadlineState] = field(default_factory=dict)

    @property
    def stream_id(self) -> str:
        return self.complaint_id

    # ---- state -------------------------------------------------------------------------

    @classmethod
    def from_history(cls, complaint_id: str, history: History) -> Complaint:
        complaint = cls(complaint_id)
        for type_, data, occurred_at in history:
            complaint.apply(Fact(type_, dict(data), occurred_at))
        return complaint

    def apply(self, fact: Fact) -> None:
        self.version += 1
        d, t = fact.data, fact.occurred_at
        if fact.type == OVERDUE:
            self.deadlines[d["deadline"]].breached = True
            return
        if fact.type == ESCALATED:
            self.level = Level(d["to_level"])
            return
        self.last_occurred_at = t
        for name, due in d.get("deadlines", {}).items():
            self.deadlines[name] = DeadlineState(parse(due))
        if fact.type == RECEIVED:
            self.status = Status.RECEIVED
            self.bureau, self.station = d["bureau"], d["station"]
            self.subject_unit, self.subject_officer = d["subject_unit"], d.get("subject_officer")
            self.channel, self.category = d["channel"], d["category"]
            self.subject_id, self.anonymous = d.get("subject_id"), d.get("anonymous", False)
            self.level = Level(d["level"])
            self.received_at = t
            self.receipt_hash = d.get("receipt_hash")
            self.intake_case_id, self.callback_id = d.get("intake_case_id"), d.get("callback_id")
        elif fact.type == ACKNOWLEDGED:
            self.status, self.acknowledged_at = Status.ACKNOWLEDGED, t
            self._meet(Deadline.ACKNOWLEDGEMENT, t)
            if "subject_unit" in d:
                self.subject_unit, self.station = d["subject_unit"], d["station"]
                self.level = Level(d["level"])
            if "subject_officer" in d:
                self.subject_officer = d["subject_officer"]
            if "category" in d:
                self.category = d["category"]
        elif fact.type == ASSIGNED:
            self.status = Status.INVESTIGATING
            self.investigator_id, self.investigator_unit = (
                d["investigator_id"],
                d["investigator_unit"],
            )
        elif fact.type == EXTENDED:
            self.extended = True
        elif fact.type == CONCLUDED:
            self.status, self.concluded_at = Status.CONCLUDED, t
            self.outcome, self.on_time = d["outcome"], d["on_time"]
            self._meet(Deadline.CONCLUSION, t)
            # A complaint withdrawn before acceptance has nothing left to accept.
            ack = self.deadlines.get(Deadline.ACKNOWLEDGEMENT)
            if ack is not None and ack.open:
                ack.cancelled = True
        elif fact.type == REPLIED:
            self.status = Status.REPLIED
        elif fact.type == CLOSED:
            self.status, self.closed_at = Status.CLOSED, t
        elif fact.type == REOPENED:
            self.status = Status.REOPENED
            self.outcome, self.on_time, self.concluded_at, self.closed_at = None, None, None, None
            self.extended = False  # each investigation round may be extended once
            self.reopened += 1
        elif fact.type == REMEDIED:
            self.fixed = True

    def _meet(self, deadline: str, t: datetime) -> None:
        state = self.deadlines.get(deadline)
        if state is not None and state.open:
            state.met_at = t

    # ---- decisions ---------------------------------------------------------------------

    def _require(self, allowed: Collection[Status], action: str) -> None:
        require(self.status, allowed, action, "complaint", self.complaint_id)

    def _breaches_before(self, t: datetime) -> list[Fact]:
        """Every open promise whose due time passed before `t` is a breach, exactly once."""
        late = sorted(
            (
                (name, s)
                for name, s in self.deadlines.items()
                if s.open and not s.breached and s.due_at < t
            ),
            key=lambda item: item[1].due_at,
        )
        return [
            Fact(
                OVERDUE,
                {"deadline": name, "due_at": iso(s.due_at), "level": self.level},
                s.due_at,
            )
            for name, s in late
        ]

    def _decide(self, fact: Fact, now: datetime) -> list[Fact]:
        check_time(fact.occurred_at, now, self.last_occurred_at, "complaint")
        return [*self._breaches_before(fact.occurred_at), fact]

    def receive(
        self, data: Mapping[str, Any], policy: ComplaintPolicy, occurred_at: datetime, now: datetime
    ) -> list[Fact]:
        if self.status is not None:
            raise IllegalTransition(f"complaint {self.complaint_id} already exists")
        check_time(occurred_at, now, None, "complaint")
        due = policy.acknowledgement_due(occurred_at)
        payload = {
            **data,
            "complaint_id": self.complaint_id,
            "deadlines": {Deadline.ACKNOWLEDGEMENT: iso(due)},
        }
        return [Fact(RECEIVED, payload, occurred_at)]

    def acknowledge(
        self,
        corrections: Mapping[str, Any],
        policy: ComplaintPolicy,
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        """Accept the complaint (受理), optionally naming its subject more precisely."""
        self._require({Status.RECEIVED}, "acknowledge")
        unit = corrections.get("subject_unit")
        if unit is not None and not unit.startswith(self.bureau):
            raise InvalidCommand(f"the subject unit must belong to bureau {self.bureau}")
        data = dict(corrections)
        if "level" in data:
            # A complaint already escalated stays at least where it was escalated to.
            data["level"] = max(Level(data["level"]), self.level, key=_LEVELS.index)
        due = policy.conclusion_due(occurred_at)
        data["deadlines"] = {Deadline.CONCLUSION: iso(due)}
        return self._decide(Fact(ACKNOWLEDGED, data, occurred_at), now)

    def assign(
        self, investigator_id: str, investigator_unit: str, occurred_at: datetime, now: datetime
    ) -> list[Fact]:
        """Assign the investigator: never the subject, never from the subject's unit (回避)."""
        self._require(_WORKING, "assign an investigator to")
        if self.subject_officer is not None and investigator_id == self.subject_officer:
            raise ConflictOfInterest("the investigator may not be the officer complained about")
        if same_unit(self.subject_unit, investigator_unit):
            raise ConflictOfInterest(
                f"the investigator's unit {investigator_unit} is part of the subject's unit "
                f"{self.subject_unit}: a complaint is investigated from outside the unit"
            )
        if (investigator_id, investigator_unit) == (self.investigator_id, self.investigator_unit):
            raise IllegalTransition(f"{investigator_id} already investigates this complaint")
        data = {
            "investigator_id": investigator_id,
            "investigator_unit": investigator_unit,
            "reassigned": self.investigator_id is not None,
        }
        return self._decide(Fact(ASSIGNED, data, occurred_at), now)

    def extend(
        self,
        reason: str,
        new_due: datetime,
        notes: Mapping[str, Any],
        policy: ComplaintPolicy,
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        """Extend the investigation once, before its deadline, by at most the policy's limit."""
        self._require(_WORKING, "extend the investigation of")
        if self.extended:
            raise IllegalTransition("the investigation was already extended once")
        current = self.deadlines.get(Deadline.CONCLUSION)
        if current is None or not current.open:
            raise IllegalTransition("there is no open conclusion deadline to extend")
        if occurred_at > current.due_at:
            raise InvalidCommand(
                "an extension must be decided before the conclusion deadline "
                f"({current.due_at.isoformat()})"
            )
        if new_due <= current.due_at:
            raise InvalidCommand("the new due date must be after the current one")
        latest = policy.latest_extension(current.due_at)
        if new_due > latest:
            raise InvalidCommand(
                f"an extension may add at most {policy.max_extension_days} days "
                f"(latest {latest.isoformat()})"
            )
        data = {
            "reason": reason,
            "previous_due_at": iso(current.due_at),
            "deadlines": {Deadline.CONCLUSION: iso(new_due)},
            **notes,
        }
        return self._decide(Fact(EXTENDED, data, occurred_at), now)

    def conclude(
        self,
        outcome: Outcome,
        actions: Sequence[str],
        notes: Mapping[str, Any],
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        """Record the finding: substantiated (in part) or not, or withdrawn, and what was done."""
        if outcome == Outcome.WITHDRAWN:
            self._require(_UNFINISHED, "record a withdrawal of")
        else:
            self._require({Status.INVESTIGATING, Status.REOPENED}, "conclude")
            if self.investigator_id is None:
                raise IllegalTransition("assign an investigator before concluding")
        if outcome in SUBSTANTIATED and not actions:
            raise InvalidCommand("a substantiated complaint needs the actions taken")
        check_time(occurred_at, now, self.last_occurred_at, "complaint")
        due = self.deadlines.get(Deadline.CONCLUSION)
        on_time = due is None or (not due.breached and occurred_at <= due.due_at)
        data = {
            "outcome": outcome,
            "actions": list(dict.fromkeys(actions)),
            "channel": self.channel,
            "category": self.category,
            "subject_unit": self.subject_unit,
            "level": self.level,
            "on_time": on_time,
            **({"subject_id": self.subject_id} if self.subject_id and not self.anonymous else {}),
            **notes,
        }
        return [*self._breaches_before(occurred_at), Fact(CONCLUDED, data, occurred_at)]

    def reply(
        self, mode: str, sealed: Mapping[str, Any], occurred_at: datetime, now: datetime
    ) -> list[Fact]:
        self._require({Status.CONCLUDED}, "send the reply for")
        if self.anonymous:
            raise IllegalTransition("an anonymous complainant left no way to be answered")
        return self._decide(Fact(REPLIED, {"mode": mode, **sealed}, occurred_at), now)

    def close(self, occurred_at: datetime, now: datetime) -> list[Fact]:
        """Close: answered, or nobody to answer (anonymous, withdrawn)."""
        if self.status == Status.CONCLUDED and not (
            self.anonymous or self.outcome == Outcome.WITHDRAWN
        ):
            raise IllegalTransition("send the reply to the complainant before closing")
        self._require({Status.REPLIED, Status.CONCLUDED}, "close")
        return self._decide(Fact(CLOSED, {"fixed": self.fixed}, occurred_at), now)

    def reopen(
        self,
        reason: str,
        notes: Mapping[str, Any],
        policy: ComplaintPolicy,
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        """Reopen a closed complaint (a dispute by the complainant, or a review)."""
        self._require({Status.CLOSED}, "reopen")
        assert self.closed_at is not None
        if reason == "disputed" and occurred_at > policy.dispute_until(self.closed_at):
            raise InvalidCommand(
                f"a closure can be disputed within {policy.dispute_days} days of it"
            )
        due = policy.conclusion_due(occurred_at)
        data = {"reason": reason, "deadlines": {Deadline.CONCLUSION: iso(due)}, **notes}
        return self._decide(Fact(REOPENED, data, occurred_at), now)

    def remedy(
        self, remedy: str, notes: Mapping[str, Any], occurred_at: datetime, now: datetime
    ) -> list[Fact]:
        """Record that the underlying problem was put right ("fixed" is not "closed")."""
        self._require({Status.CONCLUDED, Status.REPLIED, Status.CLOSED}, "record a remedy for")
        if self.outcome not in SUBSTANTIATED:
            raise IllegalTransition("only a substantiated complaint has something to put right")
        if self.fixed:
            raise IllegalTransition("the remedy is already recorded")
        return self._decide(Fact(REMEDIED, {"remedy": remedy, **notes}, occurred_at), now)

    def sweep(self, now: datetime, grace: timedelta) -> list[Fact]:
        """Breaches due by the wall clock, each with one escalation a level up."""
        if self.status is None:
            return []
        facts: list[Fact] = []
        level = self.level
        for breach in self._breaches_before(now - grace):
            facts.append(Fact(OVERDUE, {**breach.data, "level": level}, breach.occurred_at))
            up = next_level(level)
            if up is None:
                continue
            facts.append(
                Fact(
                    ESCALATED,
                    {
                        "deadline": breach.data["deadline"],
                        "from_level": level,
                        "to_level": up,
                        "to_unit": unit_at(up, self.subject_unit),
                    },
                    now,
                )
            )
            level = up
        return facts

    def next_due(self) -> DeadlineState | None:
        open_ = [s for s in self.deadlines.values() if s.open]
        return min(open_, key=lambda s: s.due_at) if open_ else None
