"""Request and response bodies of the survey-wave API (民意调查); unknown fields are refused."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from eventkit.schemas import BureauCode, ShortText, StationCode, Strict, Text, Time
from pydantic import BaseModel, Field, model_validator

from jingmin_visits.domain.survey import (
    LocalProblem,
    Outcome,
    PerceivedChange,
    SatisfactionAnswer,
    SecurityAnswer,
    SurveyMode,
)


class DefineWave(Strict):
    bureau: BureauCode
    title: ShortText = Field(description="e.g. 2026年第四季度群众安全感和满意度调查")
    period_start: date
    period_end: date
    questionnaire_version: Literal["2026.1"] = "2026.1"
    precision: float = Field(
        0.05, ge=0.01, le=0.2, description="Target margin of error per station (0.05 = ±5 points)."
    )
    station_precision: dict[StationCode, float] = Field(
        default_factory=dict, description="Per-station margins that differ from `precision`."
    )
    confidence: float = Field(0.95, ge=0.8, le=0.999)
    expected_response_rate: float = Field(
        0.5, ge=0.05, le=1.0, description="Completed interviews per unit drawn (expected RR1)."
    )
    modes: list[SurveyMode] = Field(min_length=1, max_length=3)
    occurred_at: Time | None = None

    @model_validator(mode="after")
    def _checks(self) -> DefineWave:
        if any(not 0.01 <= v <= 0.2 for v in self.station_precision.values()):
            raise ValueError("station_precision values lie in [0.01, 0.2]")
        if len(set(self.modes)) != len(self.modes):
            raise ValueError("modes are listed once each")
        if (self.period_end - self.period_start).days > 366:
            raise ValueError("a wave lasts at most a year")
        return self


class DrawSample(Strict):
    station: StationCode
    seed: int | None = Field(
        None,
        ge=0,
        lt=2**63,
        description="The draw's seed; omitted, a random one is chosen. Recorded either way.",
    )
    occurred_at: Time | None = None


class Answers(Strict):
    """The questionnaire's coded items; an item left out was not answered (说不清/拒答)."""

    security: SecurityAnswer | None = Field(None, description="安全/基本安全/不太安全/不安全")
    satisfaction: SatisfactionAnswer | None = Field(None, description="满意/基本满意/不满意")
    change: PerceivedChange | None = Field(None, description="与一年前相比: 变好/差不多/变差")
    problem: LocalProblem | None = Field(None, description="当地最突出的治安问题")

    def codes(self) -> dict[str, str]:
        return {k: v.value for k, v in self if v is not None}


class RecordSurveyAttempt(Strict):
    mode: SurveyMode
    outcome: Outcome
    answers: Answers | None = None
    comment: Text | None = Field(None, description="Free text; stored encrypted, never published.")
    problem_text: Text | None = Field(
        None,
        description="The most pressing local problem in the respondent's words: stored "
        "encrypted, it opens an intake case (channel `field`) without naming the respondent.",
    )
    area_type: Literal["urban", "suburban", "rural"] | None = Field(
        None, description="Where the unit lives, for the intake case; default from the bureau."
    )
    occurred_at: Time | None = None
    expected_version: int | None = Field(None, ge=0)


class WaveAccepted(BaseModel):
    wave_id: str
    version: int
    status: str | None
    events: list[dict[str, Any]]
    station: str | None = None
    frame_size: int | None = None
    seed: int | None = None
    sample_size: int | None = None
    unit_id: str | None = None


class WaveSummary(BaseModel):
    wave_id: str
    bureau: str
    title: str
    period_start: date
    period_end: date
    status: str
    stations_framed: int
    stations_drawn: int
    sampled: int
    attempts: int
    interviews: int
    version: int
    updated_at: datetime


class WavePage(BaseModel):
    items: list[WaveSummary]


class StationFrame(BaseModel):
    station: str
    frame_size: int
    parts: int
    margins: dict[str, dict[str, int]]
    drawn: bool
    seed: int | None = None
    sample_size: int | None = None


class WaveDetail(BaseModel):
    wave: WaveSummary
    precision: float
    station_precision: dict[str, float]
    confidence: float
    expected_response_rate: float
    modes: list[str]
    questionnaire_version: str
    questionnaire: list[dict[str, Any]]
    stations: list[StationFrame]


class SampledUnitOut(BaseModel):
    """A sampled unit as fieldwork sees it: no name, number or address (see /contact)."""

    unit_id: str
    station: str
    strata: dict[str, str]
    do_not_contact: bool
    attempts: int
    disposition: str


class SamplePage(BaseModel):
    items: list[SampledUnitOut]


class UnitContact(BaseModel):
    unit_id: str
    name: str | None = None
    phone: str | None = None
    address: str | None = None


class Estimates(BaseModel):
    wave_id: str
    bureau: str
    confidence: float
    weighting: str
    strata: list[str]
    stations: list[dict[str, Any]]
    county: dict[str, Any]


class SendInvitations(Strict):
    station: StationCode


class InvitationsSent(BaseModel):
    wave_id: str
    station: str
    counts: dict[str, int] = Field(
        description="Units by what happened: sent, already_sent, answered, opted_out, "
        "no_phone, refused_by_provider, sms_unavailable (the rest wait for the next run)."
    )


class LinkAnswer(Strict):
    reason: ShortText = Field(description="Why the answer must be linked to its person (audited).")


class AnswerLinked(BaseModel):
    wave_id: str
    unit_id: str
    version: int
    result: str
    name: str | None = None
    phone: str | None = None
    address: str | None = None
    answers: dict[str, str]
