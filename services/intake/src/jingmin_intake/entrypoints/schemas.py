"""Request and response bodies of the intake API; unknown fields are refused."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from eventkit.schemas import (
    BureauCode,
    Code,
    HistoryEvent,
    Reference,
    ShortText,
    StationCode,
    Strict,
    Text,
    Time,
)
from pydantic import BaseModel, Field, StringConstraints, model_validator

from jingmin_intake.domain.vocabulary import (
    AreaType,
    Branch,
    Channel,
    ComplaintCategory,
    EnforcementDecision,
    HoursType,
    Kind,
    PartyCategory,
    Priority,
    RejectReason,
    TransferTarget,
)

COMPLAINT_CATEGORIES = tuple(c.value for c in ComplaintCategory)
UnitCode = Annotated[str, StringConstraints(pattern=r"^\d{6,11}$")]
OfficerId = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
]
# Ten years: no promise in a deadline policy is longer.
Seconds = Annotated[int, Field(gt=0, le=10 * 365 * 86400)]


class Command(Strict):
    occurred_at: Time | None = Field(
        None,
        description="When it happened in the world; defaults to now. Not more than "
        "5 minutes ahead, not before the case's previous event.",
    )
    expected_version: int | None = Field(
        None, ge=0, description="Optimistic concurrency: refuse (409) if the case moved on."
    )


class PersonIn(Strict):
    """The person who contacted the police; stored encrypted under their own key."""

    name: ShortText | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 -]{3,20}$")] | None = None
    id_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{17}[0-9Xx]$")] | None = None
    address: ShortText | None = None


class ReceiveCase(Strict):
    occurred_at: Time | None = None
    bureau: BureauCode
    station: StationCode
    channel: Channel
    kind: Kind
    priority: Priority | None = Field(
        None, description="Defaults to urgent for alarms, general otherwise."
    )
    area_type: AreaType
    branch: Branch = Branch.OTHER
    party_category: PartyCategory | None = None
    category: Code | None = Field(
        None,
        description="Issue category code, for top issues. For kind `complaint`, required and "
        "one of the complaints categories: " + ", ".join(COMPLAINT_CATEGORIES) + ".",
    )
    person: PersonIn | None = None
    demand: Text = Field(description="The person's most urgent demand, in their words.")
    hoped_outcome: Text | None = None
    committed_due_at: Time | None = Field(None, description="服务承诺 due time.")
    appointment_at: Time | None = None
    hours_type: HoursType | None = None
    source_ref: Reference | None = None

    @model_validator(mode="after")
    def _station_in_bureau(self) -> ReceiveCase:
        if not self.station.startswith(self.bureau):
            raise ValueError("station must belong to the bureau (its code starts with it)")
        return self

    @model_validator(mode="after")
    def _complaint_category(self) -> ReceiveCase:
        # The complaints service opens its complaint from this case: it needs one of its
        # own categories, not a free issue code.
        if self.kind == Kind.COMPLAINT and self.category not in COMPLAINT_CATEGORIES:
            raise ValueError(
                "a complaint needs a complaint category: one of " + ", ".join(COMPLAINT_CATEGORIES)
            )
        return self


class AssignFirstContact(Command):
    officer_id: OfficerId
    unit: UnitCode
    in_remit: bool


class Dispatch(Command):
    unit: UnitCode
    officer_ids: list[OfficerId] = Field(min_length=1, max_length=20)
    reason: Text
    purpose: Text


class Arrive(Command):
    officer_id: OfficerId | None = None


class RecordServiceVisit(Command):
    missing_materials: list[Code] = Field(
        default_factory=list, max_length=50, description="Codes of the missing materials."
    )
    appointment_at: Time | None = None
    hours_type: HoursType = HoursType.REGULAR
    committed_due_at: Time | None = None


class Transfer(Command):
    target_type: TransferTarget
    target: Reference = Field(description="Unit code or agency code.")
    explanation: Text = Field(description="What the person was told, and where to go.")
    person_informed: bool


class Escalate(Command):
    target: Reference = "local_government"
    reason: Text


class Resolve(Command):
    reply: Text = Field(description="The reply given to the person.")


class Reject(Command):
    reason: RejectReason
    explanation: Text | None = None


class Reopen(Command):
    reason: Code
    note: Text | None = None


class Close(Command):
    pass


class DecideEnforcement(Command):
    """An enforcement decision on the case; `occurred_at` is when it was decided."""

    decision: EnforcementDecision = Field(
        description="administrative_penalty 行政处罚, administrative_compulsion 行政强制, "
        "no_penalty 不予处罚."
    )
    note: Text | None = Field(None, description="Free text; stored encrypted, never published.")


class Classify(Command):
    """Whether the case is a crime with a victim (刑事被侵害人) and whether it was preventable
    (可防性案件); each opens its own callback in the visits service."""

    crime_victim: bool
    preventable: bool
    category: Code | None = Field(
        None,
        description="Offence category code, e.g. theft.burglary; sensitive ones (e.g. "
        "sexual_offence, domestic_violence, juvenile) suppress the callbacks.",
    )
    note: Text | None = Field(None, description="Free text; stored encrypted, never published.")


class Accepted(BaseModel):
    case_id: str
    version: int
    status: str
    events: list[dict[str, Any]]


class CaseSummary(BaseModel):
    case_id: str
    bureau: str
    station: str
    channel: str
    kind: str
    priority: str
    area_type: str
    branch: str
    status: str
    version: int
    received_at: datetime
    updated_at: datetime
    source_ref: str | None = Field(
        None, description="Where the case came from, e.g. visits:visit:<id>#<issue id>."
    )
    next_due_at: datetime | None = None
    overdue: bool = False


class CasePage(BaseModel):
    items: list[CaseSummary]
    next_cursor: str | None = None


class CaseDetail(BaseModel):
    case: CaseSummary
    deadlines: dict[str, dict[str, Any]]
    history: list[HistoryEvent]


class PolicyBody(Strict):
    dispatch_seconds: Seconds | None = None
    dispatch_kinds: list[Kind] | None = None
    arrival_seconds: dict[AreaType, Seconds] | None = None
    first_contact_seconds: dict[Channel, Seconds] | None = None
    petition_acceptance_seconds: Seconds | None = None
    petition_conclusion_seconds: Seconds | None = None
    complaint_first_contact_seconds: Seconds | None = None
    reply_seconds: dict[Priority, Seconds] | None = None
    reply_kinds: list[Kind] | None = None
    sweep_grace_seconds: int | None = Field(None, ge=0, le=3600)
