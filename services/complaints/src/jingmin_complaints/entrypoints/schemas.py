"""Request and response bodies of the complaints and supervision API; unknown fields are refused."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from eventkit.schemas import (
    BureauCode,
    Code,
    HistoryEvent,
    Reference,
    ShortText,
    Strict,
    Text,
    Time,
)
from pydantic import BaseModel, Field, StringConstraints, model_validator

from jingmin_complaints.domain.vocabulary import (
    AccountabilityKind,
    Action,
    BasisType,
    Category,
    Channel,
    ExtensionReason,
    InspectionKind,
    ItemType,
    Outcome,
    PartyCategory,
    Remedy,
    ReopenReason,
    ReplyMode,
    Severity,
    Verdict,
)

# A unit: bureau (6 digits), station (9) or beat (11).
UnitCode = Annotated[str, StringConstraints(pattern=r"^\d{6}(\d{3}(\d{2})?)?$")]
OfficerId = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
]
ItemId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 -]{3,20}$")]
IdNumber = Annotated[str, StringConstraints(pattern=r"^[0-9]{17}[0-9Xx]$")]


class Command(Strict):
    occurred_at: Time | None = Field(
        None,
        description="When it happened in the world; defaults to now. Not more than "
        "5 minutes ahead, not before the item's previous event.",
    )
    expected_version: int | None = Field(
        None, ge=0, description="Optimistic concurrency: refuse (409) if the item moved on."
    )


class ComplainantIn(Strict):
    """The person complaining; every field is stored encrypted under their own key."""

    name: ShortText | None = None
    phone: Phone | None = None
    id_number: IdNumber | None = None
    address: ShortText | None = None


def _in_bureau(bureau: str, unit: str, what: str) -> None:
    if not unit.startswith(bureau):
        raise ValueError(f"{what} must belong to the bureau (its code starts with it)")


class ReceiveComplaint(Strict):
    occurred_at: Time | None = None
    bureau: BureauCode
    subject_unit: UnitCode = Field(description="The unit complained about.")
    subject_officer: OfficerId | None = Field(None, description="The officer, if known.")
    channel: Channel
    category: Category
    complainant: ComplainantIn | None = None
    anonymous: bool = Field(
        False, description="No identity is kept; the complainant cannot be answered."
    )
    account: Text = Field(description="What happened, in the complainant's words.")
    hoped_outcome: Text | None = None
    intake_case_id: ItemId | None = Field(None, description="The intake case it concerns.")
    party_category: PartyCategory | None = Field(
        None,
        description="The complainant's party category (local, non-local, vulnerable). When"
        " omitted, the party category intake recorded for `intake_case_id` is used.",
    )

    @model_validator(mode="after")
    def _unit_in_bureau(self) -> ReceiveComplaint:
        _in_bureau(self.bureau, self.subject_unit, "subject_unit")
        return self


class Acknowledge(Command):
    subject_unit: UnitCode | None = Field(None, description="Correct the subject unit.")
    subject_officer: OfficerId | None = None
    category: Category | None = None
    note: Text | None = None


class AssignInvestigator(Command):
    investigator_id: OfficerId
    investigator_unit: UnitCode


class Extend(Command):
    reason: ExtensionReason
    new_due_date: dt.date = Field(description="The new conclusion date (local), inclusive.")
    note: Text | None = None


class Conclude(Command):
    outcome: Outcome
    actions: list[Action] = Field(default_factory=list, max_length=len(Action))
    findings: Text | None = Field(None, description="What the investigation found.")


class Reply(Command):
    mode: ReplyMode
    reply: Text = Field(description="The reply as given to the complainant.")


class Close(Command):
    pass


class Reopen(Command):
    reason: ReopenReason
    note: Text | None = None


class RecordRemedy(Command):
    remedy: Remedy
    note: Text | None = None


class Accepted(BaseModel):
    version: int
    status: str
    events: list[dict[str, Any]]
    complaint_id: str | None = None
    order_id: str | None = None
    inspection_id: str | None = None
    action_id: str | None = None
    receipt_code: str | None = None


class DeadlineOut(BaseModel):
    due_at: dt.datetime
    met_at: dt.datetime | None = None
    breached_at: dt.datetime | None = None
    cancelled: bool = False


class ComplaintSummary(BaseModel):
    complaint_id: str
    bureau: str
    station: str
    subject_unit: str
    channel: str
    category: str
    status: str
    level: str
    version: int
    anonymous: bool
    investigator_unit: str | None = None
    extended: bool
    outcome: str | None = None
    on_time: bool | None = None
    fixed: bool
    reopened: int
    intake_case_id: str | None = None
    callback_id: str | None = None
    received_at: dt.datetime
    acknowledged_at: dt.datetime | None = None
    concluded_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    next_due_at: dt.datetime | None = None
    overdue: bool = False


class ComplaintPage(BaseModel):
    items: list[ComplaintSummary]
    next_cursor: str | None = None


class ComplaintDetail(BaseModel):
    complaint: ComplaintSummary
    deadlines: dict[str, DeadlineOut]
    history: list[HistoryEvent]


# ---- supervision -----------------------------------------------------------------------------


class IssueOrder(Strict):
    occurred_at: Time | None = None
    bureau: BureauCode
    owner_unit: UnitCode = Field(description="The unit that must act.")
    order_type: Annotated[str, StringConstraints(pattern=r"^(tracking|rectification)$")] = Field(
        description="tracking (跟踪督办) or rectification (限期整改)."
    )
    item_type: ItemType
    item_id: Reference
    due_at: Time | None = Field(None, description="Default: the bureau policy's working days.")
    instructions: Text | None = None

    @model_validator(mode="after")
    def _unit_in_bureau(self) -> IssueOrder:
        _in_bureau(self.bureau, self.owner_unit, "owner_unit")
        return self


class ReportBack(Command):
    report: Text = Field(description="What the unit did.")


class ReturnReport(Command):
    reason: Code
    due_at: Time
    note: Text | None = None


class CloseOrder(Command):
    verdict: Verdict
    note: Text | None = None


class OrderSummary(BaseModel):
    order_id: str
    bureau: str
    station: str
    owner_unit: str
    order_type: str
    item_type: str
    item_id: str
    level: str
    status: str
    due_at: dt.datetime
    overdue: bool
    breached: bool
    escalations: int
    verdict: str | None = None
    case_id: str | None = None
    callback_id: str | None = None
    version: int
    issued_at: dt.datetime
    reported_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None


class OrderPage(BaseModel):
    items: list[OrderSummary]
    next_cursor: str | None = None


class OrderDetail(BaseModel):
    order: OrderSummary
    history: list[HistoryEvent]


class StartInspection(Strict):
    occurred_at: Time | None = None
    bureau: BureauCode
    unit: UnitCode
    kind: InspectionKind
    period: Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] | None = Field(
        None, description="The month sampled (月抽查), YYYY-MM."
    )
    sample_size: int | None = Field(None, ge=1, le=10000)
    note: Text | None = None

    @model_validator(mode="after")
    def _check(self) -> StartInspection:
        _in_bureau(self.bureau, self.unit, "unit")
        if self.kind == InspectionKind.MONTHLY_SAMPLING and (
            self.period is None or self.sample_size is None
        ):
            raise ValueError("monthly sampling needs the period and the sample size")
        return self


class RecordFinding(Command):
    code: Code = Field(description="What was found, as a code (e.g. case_file.missing_reply).")
    severity: Severity
    item_type: ItemType | None = None
    item_id: Reference | None = None
    note: Text | None = None


class CompleteInspection(Command):
    summary: Text | None = None


class InspectionSummary(BaseModel):
    inspection_id: str
    bureau: str
    station: str
    unit: str
    kind: str
    status: str
    findings: int
    deficiencies: int
    violations: int
    version: int
    started_at: dt.datetime
    completed_at: dt.datetime | None = None


class TakeAccountability(Strict):
    occurred_at: Time | None = None
    bureau: BureauCode
    unit: UnitCode
    officer_id: OfficerId | None = Field(None, description="The officer held to account.")
    kind: AccountabilityKind
    basis_type: BasisType
    basis_id: Reference
    note: Text | None = None

    @model_validator(mode="after")
    def _unit_in_bureau(self) -> TakeAccountability:
        _in_bureau(self.bureau, self.unit, "unit")
        return self


class AccountabilitySummary(BaseModel):
    action_id: str
    bureau: str
    station: str
    unit: str
    kind: str
    basis_type: str
    basis_id: str
    taken_at: dt.datetime
    version: int


class PolicyBody(Strict):
    acknowledgement_days: int | None = Field(None, ge=1, le=366)
    conclusion_days: int | None = Field(None, ge=1, le=366)
    max_extension_days: int | None = Field(None, ge=1, le=366)
    counting: Annotated[str, StringConstraints(pattern=r"^(calendar|working)$")] | None = None
    dispute_days: int | None = Field(None, ge=1, le=366)
    recovery_working_days: int | None = Field(None, ge=1, le=366)
    tracking_working_days: int | None = Field(None, ge=1, le=366)
    rectification_working_days: int | None = Field(None, ge=1, le=366)
    escalation_working_days: int | None = Field(None, ge=1, le=366)
    sweep_grace_seconds: int | None = Field(None, ge=0, le=3600)
    timezone: ShortText | None = None
    extra_holidays: list[dt.date] | None = None
    extra_workdays: list[dt.date] | None = None
    units: dict[Annotated[str, StringConstraints(pattern=r"^\d{9}$")], ShortText] | None = None
