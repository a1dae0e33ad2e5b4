"""Supervision (督察/督办): orders with deadlines, inspections with findings, accountability."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from jingmin_complaints.domain.common import Fact, History, check_time, iso, parse, require
from jingmin_complaints.domain.errors import IllegalTransition, InvalidCommand
from jingmin_complaints.domain.policy import ComplaintPolicy
from jingmin_complaints.domain.units import next_level, unit_at
from jingmin_complaints.domain.vocabulary import (
    InspectionStatus,
    Level,
    OrderStatus,
    OrderType,
    Severity,
    Verdict,
)

# Stored event names (stable).
ISSUED = "OrderIssued"
REPORTED = "OrderReportedBack"
RETURNED = "OrderReturned"
CLOSED = "OrderClosed"
OVERDUE = "OrderOverdue"
ESCALATED = "OrderEscalated"
FOLLOW_UP = "RecoveryFollowUpRequested"
INSPECTION_STARTED = "InspectionStarted"
FINDING = "InspectionFindingRecorded"
INSPECTION_COMPLETED = "InspectionCompleted"
ACCOUNTABILITY = "AccountabilityActionTaken"

ORDER_EVENTS = (ISSUED, REPORTED, RETURNED, CLOSED, OVERDUE, ESCALATED, FOLLOW_UP)
INSPECTION_EVENTS = (INSPECTION_STARTED, FINDING, INSPECTION_COMPLETED)
ACCOUNTABILITY_EVENTS = (ACCOUNTABILITY,)
EVENT_TYPES = (*ORDER_EVENTS, *INSPECTION_EVENTS, *ACCOUNTABILITY_EVENTS)


@dataclass
class Order:
    """A supervision order: an owner unit must act on an item by a deadline."""

    STREAM_TYPE: ClassVar[str] = "supervision_order"
    ID_FIELD: ClassVar[str] = "order_id"
    NOUN: ClassVar[str] = "order"

    order_id: str
    version: int = 0
    status: OrderStatus | None = None
    bureau: str = ""
    station: str = ""
    owner_unit: str = ""
    order_type: str = ""
    item_type: str = ""
    item_id: str = ""
    level: Level = Level.STATION
    due_at: datetime | None = None
    breached: bool = False
    issued_at: datetime | None = None
    reported_at: datetime | None = None
    closed_at: datetime | None = None
    last_occurred_at: datetime | None = None
    case_id: str | None = None
    callback_id: str | None = None
    subject_id: str | None = None
    verdict: str | None = None
    escalations: int = 0

    @property
    def stream_id(self) -> str:
        return self.order_id

    @classmethod
    def from_history(cls, order_id: str, history: History) -> Order:
        order = cls(order_id)
        for type_, data, occurred_at in history:
            order.apply(Fact(type_, dict(data), occurred_at))
        return order

    def apply(self, fact: Fact) -> None:
        self.version += 1
        d, t = fact.data, fact.occurred_at
        if fact.type == OVERDUE:
            self.breached = True
            return
        if fact.type == ESCALATED:
            self.level, self.owner_unit = Level(d["to_level"]), d["to_unit"]
            self.due_at, self.breached = parse(d["due_at"]), False
            self.escalations += 1
            return
        self.last_occurred_at = t
        if fact.type == ISSUED:
            self.status = OrderStatus.ISSUED
            self.bureau, self.station, self.owner_unit = d["bureau"], d["station"], d["owner_unit"]
            self.order_type, self.item_type, self.item_id = (
                d["order_type"],
                d["item_type"],
                d["item_id"],
            )
            self.level, self.due_at, self.issued_at = Level(d["level"]), parse(d["due_at"]), t
            self.case_id, self.callback_id = d.get("case_id"), d.get("callback_id")
            self.subject_id = d.get("subject_id")
        elif fact.type == REPORTED:
            self.status, self.reported_at = OrderStatus.REPORTED, t
        elif fact.type == RETURNED:
            self.status, self.due_at, self.breached = OrderStatus.ISSUED, parse(d["due_at"]), False
        elif fact.type == CLOSED:
            self.status, self.closed_at, self.verdict = OrderStatus.CLOSED, t, d["verdict"]
        # FOLLOW_UP records a request to visits; it changes nothing here.

    def _require(self, allowed: set[OrderStatus], action: str) -> None:
        require(self.status, allowed, action, "order", self.order_id)

    def _breach_before(self, t: datetime) -> list[Fact]:
        if self.status != OrderStatus.ISSUED or self.breached or self.due_at is None:
            return []
        if self.due_at >= t:
            return []
        data = {"due_at": iso(self.due_at), "level": self.level, "owner_unit": self.owner_unit}
        return [Fact(OVERDUE, data, self.due_at)]

    def _decide(self, facts: list[Fact], now: datetime) -> list[Fact]:
        check_time(facts[0].occurred_at, now, self.last_occurred_at, "order")
        return [*self._breach_before(facts[0].occurred_at), *facts]

    def issue(
        self, data: Mapping[str, Any], due_at: datetime, occurred_at: datetime, now: datetime
    ) -> list[Fact]:
        if self.status is not None:
            raise IllegalTransition(f"order {self.order_id} already exists")
        check_time(occurred_at, now, None, "order")
        if due_at <= occurred_at:
            raise InvalidCommand("the deadline must be after the order is issued")
        payload = {**data, "order_id": self.order_id, "due_at": iso(due_at)}
        return [Fact(ISSUED, payload, occurred_at)]

    def report_back(
        self, notes: Mapping[str, Any], occurred_at: datetime, now: datetime
    ) -> list[Fact]:
        """The owner unit reports what it did; a service-recovery report asks for a follow-up."""
        self._require({OrderStatus.ISSUED}, "report back on")
        assert self.due_at is not None
        facts = [Fact(REPORTED, {"on_time": occurred_at <= self.due_at, **notes}, occurred_at)]
        if self.order_type == OrderType.SERVICE_RECOVERY:
            # The follow-up callback measures whether the recovery worked (DOMAIN §3.4).
            follow_up = {"case_id": self.case_id, "callback_id": self.callback_id}
            if self.subject_id:
                follow_up["subject_id"] = self.subject_id
            facts.append(Fact(FOLLOW_UP, follow_up, occurred_at))
        return self._decide(facts, now)

    def return_report(
        self,
        reason: str,
        due_at: datetime,
        notes: Mapping[str, Any],
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        """The report is not accepted (整改不到位): act again by a new deadline."""
        self._require({OrderStatus.REPORTED}, "return the report of")
        if due_at <= occurred_at:
            raise InvalidCommand("the new deadline must be after the report is returned")
        data = {"reason": reason, "due_at": iso(due_at), **notes}
        return self._decide([Fact(RETURNED, data, occurred_at)], now)

    def close(
        self, verdict: Verdict, notes: Mapping[str, Any], occurred_at: datetime, now: datetime
    ) -> list[Fact]:
        self._require({OrderStatus.REPORTED}, "close")
        assert self.issued_at is not None
        data = {
            "verdict": verdict,
            "order_type": self.order_type,
            "escalations": self.escalations,
            **notes,
        }
        return self._decide([Fact(CLOSED, data, occurred_at)], now)

    def sweep(self, now: datetime, grace: timedelta, policy: ComplaintPolicy) -> list[Fact]:
        """An overdue order's breach, once, and its escalation one level up with a new deadline."""
        breach = self._breach_before(now - grace)
        if not breach:
            return []
        up = next_level(self.level)
        if up is None:
            return breach  # at the top: the breach stays on the supervisors' overdue list
        escalation = {
            "from_level": self.level,
            "to_level": up,
            "to_unit": unit_at(up, self.station),
            "due_at": iso(policy.escalated_due(now)),
        }
        return [*breach, Fact(ESCALATED, escalation, now)]


@dataclass
class Inspection:
    """One inspection (网上/现场督察, 月抽查) of a unit, with its findings."""

    STREAM_TYPE: ClassVar[str] = "inspection"
    ID_FIELD: ClassVar[str] = "inspection_id"
    NOUN: ClassVar[str] = "inspection"

    inspection_id: str
    version: int = 0
    status: InspectionStatus | None = None
    bureau: str = ""
    station: str = ""
    unit: str = ""
    kind: str = ""
    findings: int = 0
    deficiencies: int = 0
    violations: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    last_occurred_at: datetime | None = None

    @property
    def stream_id(self) -> str:
        return self.inspection_id

    @classmethod
    def from_history(cls, inspection_id: str, history: History) -> Inspection:
        inspection = cls(inspection_id)
        for type_, data, occurred_at in history:
            inspection.apply(Fact(type_, dict(data), occurred_at))
        return inspection

    def apply(self, fact: Fact) -> None:
        self.version += 1
        d, t = fact.data, fact.occurred_at
        self.last_occurred_at = t
        if fact.type == INSPECTION_STARTED:
            self.status, self.started_at = InspectionStatus.OPEN, t
            self.bureau, self.station, self.unit, self.kind = (
                d["bureau"],
                d["station"],
                d["unit"],
                d["kind"],
            )
        elif fact.type == FINDING:
            self.findings += 1
            if d["severity"] == Severity.DEFICIENCY:
                self.deficiencies += 1
            elif d["severity"] == Severity.VIOLATION:
                self.violations += 1
        elif fact.type == INSPECTION_COMPLETED:
            self.status, self.completed_at = InspectionStatus.COMPLETED, t

    def start(self, data: Mapping[str, Any], occurred_at: datetime, now: datetime) -> list[Fact]:
        if self.status is not None:
            raise IllegalTransition(f"inspection {self.inspection_id} already exists")
        check_time(occurred_at, now, None, "inspection")
        payload = {**data, "inspection_id": self.inspection_id}
        return [Fact(INSPECTION_STARTED, payload, occurred_at)]

    def record_finding(
        self, data: Mapping[str, Any], occurred_at: datetime, now: datetime
    ) -> list[Fact]:
        require(self.status, {InspectionStatus.OPEN}, "record a finding in", "inspection", "")
        check_time(occurred_at, now, self.last_occurred_at, "inspection")
        return [Fact(FINDING, {**data, "finding_no": self.findings + 1}, occurred_at)]

    def complete(self, data: Mapping[str, Any], occurred_at: datetime, now: datetime) -> list[Fact]:
        require(self.status, {InspectionStatus.OPEN}, "complete", "inspection", "")
        check_time(occurred_at, now, self.last_occurred_at, "inspection")
        payload = {
            **data,
            "findings": self.findings,
            "deficiencies": self.deficiencies,
            "violations": self.violations,
        }
        return [Fact(INSPECTION_COMPLETED, payload, occurred_at)]


@dataclass
class Accountability:
    """An accountability action (诫勉谈话, 部门首长问责, 行政过错责任追究, 警示教育)."""

    STREAM_TYPE: ClassVar[str] = "accountability"
    ID_FIELD: ClassVar[str] = "action_id"
    NOUN: ClassVar[str] = "accountability action"

    action_id: str
    version: int = 0
    status: str | None = None
    bureau: str = ""
    station: str = ""
    kind: str = ""
    unit: str = ""
    basis_type: str = ""
    basis_id: str = ""
    taken_at: datetime | None = None
    last_occurred_at: datetime | None = None

    @property
    def stream_id(self) -> str:
        return self.action_id

    @classmethod
    def from_history(cls, action_id: str, history: History) -> Accountability:
        action = cls(action_id)
        for type_, data, occurred_at in history:
            action.apply(Fact(type_, dict(data), occurred_at))
        return action

    def apply(self, fact: Fact) -> None:
        self.version += 1
        self.last_occurred_at = fact.occurred_at
        if fact.type == ACCOUNTABILITY:
            d = fact.data
            self.status, self.bureau, self.station = "taken", d["bureau"], d["station"]
            self.kind, self.unit, self.taken_at = d["kind"], d["unit"], fact.occurred_at
            self.basis_type, self.basis_id = d["basis_type"], d["basis_id"]

    def take(self, data: Mapping[str, Any], occurred_at: datetime, now: datetime) -> list[Fact]:
        if self.status is not None:
            raise IllegalTransition(f"accountability action {self.action_id} already exists")
        check_time(occurred_at, now, None, "accountability action")
        return [Fact(ACCOUNTABILITY, {**data, "action_id": self.action_id}, occurred_at)]
