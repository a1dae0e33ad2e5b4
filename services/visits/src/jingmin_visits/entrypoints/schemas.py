"""Request and response bodies of the visits API; unknown fields are refused."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from eventkit.schemas import (
    BureauCode,
    Code,
    HistoryEvent,
    OfficerId,
    PersonIn,
    ShortText,
    StationCode,
    Strict,
    SubjectId,
    Text,
    Time,
)
from pydantic import BaseModel, Field, StringConstraints, model_validator

from jingmin_visits.domain.vocabulary import (
    AreaType,
    AttemptOutcome,
    Branch,
    EngagementType,
    Feedback,
    IssueKind,
    Programme,
    Satisfaction,
    Security,
    TargetType,
    Venue,
    VisitMode,
)


class Command(Strict):
    occurred_at: Time | None = Field(
        None, description="When it happened; defaults to now. Not more than 5 minutes ahead."
    )
    expected_version: int | None = Field(
        None, ge=0, description="Refuse with 409 if the callback has moved on."
    )


class RecordAttempt(Command):
    outcome: AttemptOutcome


class AssignCallback(Command):
    officer_id: OfficerId


class RecordAnswer(Command):
    satisfaction: Satisfaction = Field(description="满意 / 基本满意 / 不满意")
    security: Security = Field(description="安全 / 基本安全 / 不安全")
    comment: Text | None = Field(None, description="Free text; stored encrypted.")
    wants_complaint: bool = Field(
        False, description="The person wants a complaint opened (the complaints service does)."
    )
    complaint_category: (
        Literal[
            "attitude",
            "inaction",
            "misconduct",
            "unfair_enforcement",
            "corruption",
            "service_delay",
            "discipline",
            "other",
        ]
        | None
    ) = None


class OptOut(Strict):
    subject_id: SubjectId
    bureau: BureauCode


class WithdrawOptOut(Strict):
    bureau: BureauCode = Field(description="The bureau the opt-out was recorded in.")
    reason: ShortText = Field(description="How the person asked to be contacted again.")


class OptOutState(BaseModel):
    subject_id: str
    opted_out: bool


class Accepted(BaseModel):
    callback_id: str
    version: int
    status: str
    events: list[dict[str, Any]]


class CallbackSummary(BaseModel):
    callback_id: str
    case_id: str
    trigger: str
    bureau: str
    station: str
    status: str
    mode: str | None = None
    purpose: str = Field(
        "survey",
        description="What the call is for: survey, notification (告知, crime victims) or "
        "prevention_advice (preventable cases).",
    )
    due_at: datetime | None = None
    original_due_at: datetime | None = None
    expires_at: datetime | None = None
    suppression_reason: str | None = None
    attempts: int = 0
    last_outcome: str | None = None
    satisfaction: str | None = None
    security: str | None = None
    assignee: str | None = None
    version: int
    overdue: bool = False


class CallbackContact(BaseModel):
    """Whom to call; shown to the officer making the callback, never stored here."""

    callback_id: str
    name: str | None
    phone: str | None


class CallbackPage(BaseModel):
    items: list[CallbackSummary]


class CallbackDetail(BaseModel):
    callback: CallbackSummary
    history: list[HistoryEvent]


class PolicyBody(Strict):
    """A partial policy: fields left out keep their current value."""

    triggers: list[dict[str, Any]] | None = None
    suppress_categories: dict[str, str] | None = None
    timezone: str | None = None
    quiet_start: str | None = None
    quiet_end: str | None = None
    expire_after_seconds: int | None = None
    survey_answer_linking: bool | None = Field(
        None, description="May a commander or supervisor learn who gave a survey answer."
    )


# ---- visits and engagement events -------------------------------------------------------

Beat = Annotated[str, StringConstraints(pattern=r"^\d{11}$")]


class IssueIn(Strict):
    """An issue a citizen raised; intake opens a `field` case for it."""

    kind: IssueKind = IssueKind.OPINION
    category: Code | None = Field(None, description="Issue category code, for top issues.")
    branch: Branch | None = None
    area_type: AreaType | None = Field(None, description="Defaults to the visit's area type.")
    summary: Text = Field(description="What the person raised, in their words (encrypted).")


class ScheduleVisit(Strict):
    occurred_at: Time | None = None
    bureau: BureauCode
    station: StationCode
    beat: Beat | None = Field(None, description="警务室/社区 code: the station code + 2 digits.")
    programme: Programme
    mode: VisitMode
    target_type: TargetType
    area_type: AreaType
    officer_id: OfficerId
    officer_rank: Code = Field(description="Rank or post, e.g. community_officer, bureau_leader.")
    planned_for: Time
    person: PersonIn | None = Field(None, description="Whom the visit is for (encrypted).")

    @model_validator(mode="after")
    def _units_nest(self) -> ScheduleVisit:
        if not self.station.startswith(self.bureau):
            raise ValueError("station must belong to the bureau (its code starts with it)")
        if self.beat is not None and not self.beat.startswith(self.station):
            raise ValueError("beat must belong to the station (its code starts with it)")
        return self


class VisitCommand(Strict):
    occurred_at: Time | None = Field(
        None, description="When it happened; defaults to now. Not more than 5 minutes ahead."
    )
    expected_version: int | None = Field(
        None, ge=0, description="Refuse with 409 if the visit has moved on."
    )


class CompleteVisit(VisitCommand):
    feedback: Feedback = Field(description="褒奖支持 / 批评指责 / 事不关己")
    mode: VisitMode | None = Field(None, description="How it was done; defaults to the plan.")
    opinions: Text | None = Field(None, description="Opinions heard (encrypted).")
    issues: list[IssueIn] = Field(default_factory=list, max_length=20)


class FailVisit(VisitCommand):
    outcome: Literal["nobody_home", "refused"]
    note: Text | None = None


class RescheduleVisit(VisitCommand):
    planned_for: Time
    reason: Literal[
        "nobody_home", "refused", "citizen_request", "officer_unavailable", "weather", "other"
    ]
    officer_id: OfficerId | None = Field(None, description="Hand the visit to another officer.")


class OpinionIn(Strict):
    feedback: Feedback
    text: Text | None = Field(None, description="The opinion in the participant's words.")
    person: PersonIn | None = None
    issue: IssueIn | None = Field(None, description="Raise an intake case for it.")


class HoldEngagement(Strict):
    occurred_at: Time | None = Field(None, description="When it was held; defaults to now.")
    bureau: BureauCode
    station: StationCode
    beat: Beat | None = None
    type: EngagementType
    venue: Venue
    area_type: AreaType
    organiser: OfficerId
    officer_ids: list[OfficerId] = Field(default_factory=list, max_length=100)
    participants: int = Field(ge=1, le=100_000, description="Members of the public present.")
    opinions: list[OpinionIn] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _units_nest(self) -> HoldEngagement:
        if not self.station.startswith(self.bureau):
            raise ValueError("station must belong to the bureau (its code starts with it)")
        if self.beat is not None and not self.beat.startswith(self.station):
            raise ValueError("beat must belong to the station (its code starts with it)")
        return self


class RecordOpinions(Strict):
    occurred_at: Time | None = None
    expected_version: int | None = Field(None, ge=0)
    opinions: list[OpinionIn] = Field(min_length=1, max_length=50)


class OutreachAccepted(BaseModel):
    visit_id: str | None = None
    engagement_id: str | None = None
    version: int
    status: str | None
    events: list[dict[str, Any]]


class VisitSummary(BaseModel):
    visit_id: str
    bureau: str
    station: str
    beat: str | None = None
    programme: str
    mode: str
    target_type: str
    area_type: str
    officer_id: str
    officer_rank: str
    status: str
    outcome: str | None = None
    feedback: str | None = None
    planned_for: datetime
    visited_at: datetime | None = None
    attempts: int
    issues: int
    version: int


class VisitPage(BaseModel):
    items: list[VisitSummary]


class RaisedIssue(BaseModel):
    issue_id: str
    case_id: str = Field(description="The intake case opened for it (same id).")
    kind: str
    category: str | None = None
    raised_at: datetime


class VisitDetail(BaseModel):
    visit: VisitSummary
    issues: list[RaisedIssue]
    history: list[HistoryEvent]


class EngagementSummary(BaseModel):
    engagement_id: str
    bureau: str
    station: str
    type: str
    venue: str
    organiser: str
    participants: int
    held_at: datetime
    opinions: int
    issues: int
    version: int


class EngagementPage(BaseModel):
    items: list[EngagementSummary]


class EngagementDetail(BaseModel):
    engagement: EngagementSummary
    issues: list[RaisedIssue]
    history: list[HistoryEvent]
