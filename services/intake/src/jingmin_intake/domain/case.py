"""The Case aggregate: one contact between the public and the police, from receipt to close."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from eventkit.domain import DeadlineState as DeadlineState
from eventkit.domain import Fact as Fact
from eventkit.domain import check_time

from jingmin_intake.domain.errors import IllegalTransition, InvalidCommand
from jingmin_intake.domain.hotline import hotline_ref, is_transfer_to_hotline
from jingmin_intake.domain.vocabulary import (
    OPEN,
    OUTCOMES,
    Deadline,
    EnforcementDecision,
    Kind,
    RejectReason,
    Status,
)

# Stored event names: stable, explicit, never derived from class or module names.
RECEIVED = "CaseReceived"
FIRST_CONTACT = "FirstContactAssigned"
DISPATCHED = "CaseDispatched"
ARRIVED = "ArrivedOnScene"
SERVICE_VISIT = "ServiceApplicationRecorded"
TRANSFERRED = "CaseTransferred"
ESCALATED = "CaseEscalated"
RESOLVED = "CaseResolved"
REJECTED = "CaseRejected"
REOPENED = "CaseReopened"
CLOSED = "CaseClosed"
BREACHED = "DeadlineBreached"
# The facts the visits service's 执法回访, 刑事被侵害人回访告知 and 可防性案件回访 follow.
ENFORCEMENT_DECIDED = "EnforcementDecided"
CLASSIFIED = "CaseClassified"

EVENT_TYPES = (
    RECEIVED,
    FIRST_CONTACT,
    DISPATCHED,
    ARRIVED,
    SERVICE_VISIT,
    TRANSFERRED,
    ESCALATED,
    RESOLVED,
    REJECTED,
    REOPENED,
    CLOSED,
    BREACHED,
    ENFORCEMENT_DECIDED,
    CLASSIFIED,
)

_NEVER_DROPPED = frozenset({Kind.ALARM, Kind.COMPLAINT})
_OUTCOME_OF = {
    RESOLVED: Status.RESOLVED,
    TRANSFERRED: Status.TRANSFERRED,
    ESCALATED: Status.ESCALATED,
    REJECTED: Status.REJECTED,
}
_MEETS: dict[str, frozenset[str]] = {
    FIRST_CONTACT: frozenset({Deadline.FIRST_CONTACT}),
    DISPATCHED: frozenset({Deadline.DISPATCH}),
    ARRIVED: frozenset({Deadline.ARRIVAL}),
    **{t: frozenset({Deadline.FIRST_CONTACT, Deadline.RESOLUTION}) for t in _OUTCOME_OF},
}


def _iso(t: datetime) -> str:
    return t.isoformat()


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


@dataclass
class Case:
    case_id: str
    version: int = 0
    status: Status | None = None
    bureau: str = ""
    station: str = ""
    kind: str = ""
    channel: str = ""
    priority: str = ""
    area_type: str = ""
    subject_id: str | None = None
    received_at: datetime | None = None
    last_occurred_at: datetime | None = None
    first_contact_at: datetime | None = None
    dispatched_at: datetime | None = None
    arrived_at: datetime | None = None
    service_visits: int = 0
    deadlines: dict[str, DeadlineState] = field(default_factory=dict)
    category: str | None = None
    # Set when the case came from the 12345 hotline or was transferred to it: the hotline
    # then follows its status on its partner topic.
    hotline_direction: str | None = None
    hotline_ref: str | None = None
    transferred_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    person_informed: bool | None = None
    enforcement_decision: str | None = None
    # The latest classification (刑事被侵害人, 可防性案件); None until one is recorded.
    classification: tuple[bool, bool, str | None] | None = None

    @property
    def reply_due_at(self) -> datetime | None:
        state = self.deadlines.get(Deadline.RESOLUTION)
        return state.due_at if state is not None else None

    # ---- state -------------------------------------------------------------------------

    @classmethod
    def from_history(
        cls, case_id: str, history: Iterable[tuple[str, Mapping[str, Any], datetime]]
    ) -> Case:
        case = cls(case_id)
        for type_, data, occurred_at in history:
            case.apply(Fact(type_, dict(data), occurred_at))
        return case

    def apply(self, fact: Fact) -> None:
        self.version += 1
        d, t = fact.data, fact.occurred_at
        if fact.type == BREACHED:
            self.deadlines[d["deadline"]].breached = True
            return  # a system fact: it does not move the case's own timeline
        self.last_occurred_at = t
        for name in _MEETS.get(fact.type, ()):
            state = self.deadlines.get(name)
            if state is not None and state.open:
                state.met_at = t
        for name, due in d.get("deadlines", {}).items():
            self.deadlines[name] = DeadlineState(_parse(due))
        if fact.type == RECEIVED:
            self.status = Status.RECEIVED
            self.bureau, self.station = d["bureau"], d["station"]
            self.kind, self.channel = d["kind"], d["channel"]
            self.priority, self.area_type = d["priority"], d["area_type"]
            self.subject_id = d.get("subject_id")
            self.received_at = t
            self.category = d.get("category")
            self.hotline_ref = hotline_ref(d["channel"], d.get("source_ref"))
            if self.hotline_ref is not None:
                self.hotline_direction = "from_hotline"
        elif fact.type == FIRST_CONTACT:
            self.first_contact_at = t
            if self.status == Status.RECEIVED:
                self.status = Status.ASSIGNED
        elif fact.type == DISPATCHED:
            self.status, self.dispatched_at = Status.DISPATCHED, t
        elif fact.type == ARRIVED:
            self.status, self.arrived_at = Status.ON_SCENE, t
        elif fact.type == SERVICE_VISIT:
            self.status = Status.IN_SERVICE
            self.service_visits = d["visit_number"]
        elif fact.type in _OUTCOME_OF:
            self.status = _OUTCOME_OF[fact.type]
            if fact.type == TRANSFERRED:
                self.transferred_at = t
                self.person_informed = d.get("person_informed")
                if is_transfer_to_hotline(d):
                    self.hotline_direction = self.hotline_direction or "to_hotline"
            elif fact.type == RESOLVED:
                self.resolved_at = t
            for state in self.deadlines.values():
                if state.open:
                    state.cancelled = True
        elif fact.type == REOPENED:
            self.status = Status.REOPENED
        elif fact.type == CLOSED:
            self.status = Status.CLOSED
            self.closed_at = t
        elif fact.type == ENFORCEMENT_DECIDED:
            self.enforcement_decision = d["decision"]
        elif fact.type == CLASSIFIED:
            self.classification = (d["crime_victim"], d["preventable"], d.get("category"))

    # ---- decisions ---------------------------------------------------------------------

    def _require(self, allowed: Iterable[Status], action: str) -> None:
        if self.status is None:
            raise IllegalTransition(f"case {self.case_id} does not exist")
        if self.status not in set(allowed):
            raise IllegalTransition(f"cannot {action} a case that is {self.status.value}")

    def _check_time(self, occurred_at: datetime, now: datetime) -> None:
        check_time(occurred_at, now, self.last_occurred_at, "case")

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
            Fact(BREACHED, {"deadline": name, "due_at": _iso(s.due_at)}, s.due_at)
            for name, s in late
        ]

    def _new_dues(self, deadlines: Mapping[str, datetime]) -> dict[str, str]:
        """The due times a fact may set: an open promise is never silently pushed back.

        A later due for a promise still open (a petition accepted after a committed reply
        time, a second visit promising a later date) would hide its breach; only a stricter
        one, or one for a promise that is met, cancelled or new, takes effect.
        """
        out: dict[str, str] = {}
        for name, due in deadlines.items():
            current = self.deadlines.get(name)
            if current is not None and current.open and current.due_at <= due:
                continue
            out[name] = _iso(due)
        return out

    def _decide(self, fact: Fact, now: datetime) -> list[Fact]:
        self._check_time(fact.occurred_at, now)
        return [*self._breaches_before(fact.occurred_at), fact]

    def receive(
        self,
        data: dict[str, Any],
        deadlines: Mapping[str, datetime],
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        if self.status is not None:
            raise IllegalTransition(f"case {self.case_id} already exists")
        self._check_time(occurred_at, now)
        payload = {
            **data,
            "case_id": self.case_id,
            "deadlines": {k: _iso(v) for k, v in deadlines.items()},
        }
        return [Fact(RECEIVED, payload, occurred_at)]

    def assign_first_contact(
        self,
        officer_id: str,
        unit: str,
        in_remit: bool,
        deadlines: Mapping[str, datetime],
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        self._require(OPEN, "assign a first contact to")
        if self.first_contact_at is not None:
            raise IllegalTransition("the first contact is already assigned (首问负责制)")
        return self._decide(
            Fact(
                FIRST_CONTACT,
                {
                    "officer_id": officer_id,
                    "unit": unit,
                    "in_remit": in_remit,
                    "deadlines": self._new_dues(deadlines),
                },
                occurred_at,
            ),
            now,
        )

    def dispatch(
        self,
        data: dict[str, Any],
        deadlines: Mapping[str, datetime],
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        self._require({Status.RECEIVED, Status.ASSIGNED, Status.REOPENED}, "dispatch")
        return self._decide(
            Fact(
                DISPATCHED,
                {**data, "deadlines": self._new_dues(deadlines)},
                occurred_at,
            ),
            now,
        )

    def arrive(self, data: dict[str, Any], occurred_at: datetime, now: datetime) -> list[Fact]:
        if self.status is not None and self.dispatched_at is None:
            raise IllegalTransition("cannot record an arrival before the case is dispatched")
        self._require({Status.DISPATCHED}, "record an arrival on")
        return self._decide(Fact(ARRIVED, data, occurred_at), now)

    def record_service_visit(
        self,
        data: dict[str, Any],
        committed_due_at: datetime | None,
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        self._require(
            {Status.RECEIVED, Status.ASSIGNED, Status.IN_SERVICE, Status.REOPENED},
            "record a service visit on",
        )
        if self.kind != Kind.SERVICE:
            raise InvalidCommand(f"service visits apply to service cases, not {self.kind}")
        deadlines = {}
        if committed_due_at is not None:
            if committed_due_at <= occurred_at:
                raise InvalidCommand("committed_due_at must be after the visit")
            deadlines = self._new_dues({Deadline.RESOLUTION: committed_due_at})
        return self._decide(
            Fact(
                SERVICE_VISIT,
                {**data, "visit_number": self.service_visits + 1, "deadlines": deadlines},
                occurred_at,
            ),
            now,
        )

    def transfer(self, data: dict[str, Any], occurred_at: datetime, now: datetime) -> list[Fact]:
        self._require(OPEN, "transfer")
        return self._decide(Fact(TRANSFERRED, data, occurred_at), now)

    def escalate(self, data: dict[str, Any], occurred_at: datetime, now: datetime) -> list[Fact]:
        self._require(OPEN, "escalate")
        return self._decide(Fact(ESCALATED, data, occurred_at), now)

    def resolve(self, data: dict[str, Any], occurred_at: datetime, now: datetime) -> list[Fact]:
        self._require(OPEN, "resolve")
        extra: dict[str, Any] = {}
        if self.kind == Kind.SERVICE and self.service_visits:
            # 一次办结: done in the single visit the service needed. With no visit recorded
            # both are left out: claiming one visit would make recording nothing score best.
            extra["one_visit"] = self.service_visits == 1
            extra["service_visits"] = self.service_visits
        return self._decide(Fact(RESOLVED, {**data, **extra}, occurred_at), now)

    def reject(
        self,
        reason: str,
        data: dict[str, Any],
        has_explanation: bool,
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        self._require(OPEN, "reject")
        if self.kind in _NEVER_DROPPED and (reason == RejectReason.OTHER or not has_explanation):
            # 有警必接: an alarm is never dropped without a stated, specific reason; nor is a
            # complaint about the police, which the police themselves are refusing to hear.
            raise InvalidCommand(
                f"a{'n' if self.kind == Kind.ALARM else ''} {self.kind} can only be rejected "
                "with a specific reason code and an explanation"
            )
        return self._decide(Fact(REJECTED, {**data, "reason": reason}, occurred_at), now)

    def reopen(
        self,
        data: dict[str, Any],
        deadlines: Mapping[str, datetime],
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        self._require({*OUTCOMES, Status.CLOSED}, "reopen")
        return self._decide(
            Fact(
                REOPENED,
                {**data, "deadlines": self._new_dues(deadlines)},
                occurred_at,
            ),
            now,
        )

    def close(self, occurred_at: datetime, now: datetime) -> list[Fact]:
        self._require(OUTCOMES, "close")
        return self._decide(Fact(CLOSED, {}, occurred_at), now)

    def _require_followable(self, action: str) -> None:
        """Enforcement decisions and classifications follow a case at any stage, even after
        it closed (an administrative case is decided days after the alarm), but not a
        complaint about the police, which the complaints service owns."""
        if self.status is None:
            raise IllegalTransition(f"case {self.case_id} does not exist")
        if self.kind == Kind.COMPLAINT:
            raise InvalidCommand(f"cannot {action} a complaint case (the complaints service's)")

    def decide_enforcement(
        self, decision: str, data: dict[str, Any], occurred_at: datetime, now: datetime
    ) -> list[Fact]:
        """Record the enforcement decision (执法决定): once per case."""
        self._require_followable("record an enforcement decision on")
        if self.enforcement_decision is not None:
            raise IllegalTransition(
                f"the enforcement decision was already recorded ({self.enforcement_decision})"
            )
        payload = {**data, "decision": EnforcementDecision(decision).value}
        return self._decide(Fact(ENFORCEMENT_DECIDED, payload, occurred_at), now)

    def classify(
        self,
        crime_victim: bool,
        preventable: bool,
        category: str | None,
        data: dict[str, Any],
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        """Classify the case: a crime with a victim, preventable. Restating the current
        classification records nothing; a different one is a new fact."""
        self._require_followable("classify")
        if self.classification == (crime_victim, preventable, category):
            return []
        payload: dict[str, Any] = {
            **data,
            "crime_victim": crime_victim,
            "preventable": preventable,
        }
        if category is not None:
            payload["category"] = category
        return self._decide(Fact(CLASSIFIED, payload, occurred_at), now)

    def sweep(
        self, now: datetime, grace: timedelta, only: Collection[str] | None = None
    ) -> list[Fact]:
        """Breaches that are due by the wall clock, for cases where nothing happens at all.

        `only` limits them to the named promises (the sweeper's scan knows which are ripe).
        """
        if self.status is None:
            return []
        found = self._breaches_before(now - grace)
        return found if only is None else [f for f in found if f.data["deadline"] in only]

    def open_deadlines(self) -> dict[str, DeadlineState]:
        """Promises neither met nor cancelled (breached ones included)."""
        return {k: s for k, s in self.deadlines.items() if s.open}
