"""Request and response bodies of the visits API; unknown fields are refused."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventkit.schemas import BureauCode, HistoryEvent, Strict, SubjectId, Text, Time
from pydantic import BaseModel, Field

from jingmin_visits.domain.vocabulary import AttemptOutcome, Satisfaction, Security


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
