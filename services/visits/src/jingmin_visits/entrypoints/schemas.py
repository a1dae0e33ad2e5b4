"""Request and response bodies of the visits API; unknown fields are refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from jingmin_visits.domain.vocabulary import AttemptOutcome, Satisfaction, Security

BureauCode = Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
SubjectId = Annotated[str, StringConstraints(pattern=r"^sub_[A-Za-z0-9]{8,64}$")]
# Control characters (NUL above all: PostgreSQL text cannot hold it) are refused.
_NO_CONTROL = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
Text = Annotated[
    str,
    StringConstraints(min_length=1, max_length=4000, strip_whitespace=True, pattern=_NO_CONTROL),
]

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def plausible(t: datetime) -> datetime:
    try:
        if EARLIEST <= t <= LATEST:
            return t
    except OverflowError:
        pass
    raise ValueError(f"time must lie between {EARLIEST.year} and {LATEST.year}")


Time = Annotated[AwareDatetime, AfterValidator(plausible)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Command(Strict):
    occurred_at: Time | None = Field(
        None, description="When it happened; defaults to now. Not more than 5 minutes ahead."
    )
    expected_version: int | None = Field(
        None, ge=0, description="Refuse with 409 if the callback has moved on."
    )


class RecordAttempt(Command):
    outcome: AttemptOutcome


class RecordAnswer(Command):
    satisfaction: Satisfaction = Field(description="满意 / 基本满意 / 不满意")
    security: Security = Field(description="安全 / 基本安全 / 不安全")
    comment: Text | None = Field(None, description="Free text; stored encrypted.")


class OptOut(Strict):
    subject_id: SubjectId
    bureau: BureauCode


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
    due_at: datetime | None = None
    original_due_at: datetime | None = None
    expires_at: datetime | None = None
    suppression_reason: str | None = None
    attempts: int = 0
    last_outcome: str | None = None
    satisfaction: str | None = None
    security: str | None = None
    version: int
    overdue: bool = False


class CallbackPage(BaseModel):
    items: list[CallbackSummary]


class HistoryEvent(BaseModel):
    version: int
    type: str
    occurred_at: datetime
    recorded_at: datetime
    actor: str | None = None
    data: dict[str, Any]


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
