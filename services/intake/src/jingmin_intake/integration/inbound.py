"""What intake consumes from other services, read by intake's own model of each contract.

Messages are checked against `contracts/` when the schema files are at hand, and always by
these models: a message intake cannot act on goes to the dead-letter topic at once. Unknown
fields are ignored, not refused, so a producer may add optional fields (a compatible schema
change) without stopping this consumer.
"""

from __future__ import annotations

from typing import Annotated, Literal

from eventkit.schemas import BureauCode, Code, OfficerId, StationCode, Time
from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from jingmin_intake.domain.vocabulary import AreaType, Branch, ComplaintCategory, Kind

VISITS_TOPIC = "visits.visit.events.v1"
ISSUE_RAISED = "jingmin.visits.IssueRaised.v1"

Hex32 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
# Intake publishes subject ids in the form eventkit.personal.subject_ref makes them
# (contracts/intake/CaseReceived.v1.json), so it accepts no other form.
SubjectRef = Annotated[str, StringConstraints(pattern=r"^sub_[a-z0-9]{8,64}$")]
_COMPLAINT_CATEGORIES = frozenset(c.value for c in ComplaintCategory)
Programme = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,40}$")]


class IssueRaised(BaseModel):
    """jingmin.visits.IssueRaised.v1: a citizen raised an issue during a visit or an
    engagement event, or named a problem in a resident survey; intake opens one `field`
    case for it. No personal data, no free text (a survey's issue names no person)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    issue_id: Hex32
    source_type: Literal["visit", "engagement", "survey"]
    source_id: Hex32
    bureau: BureauCode
    station: StationCode
    occurred_at: Time
    kind: Kind
    category: Code | None = None
    branch: Branch | None = None
    area_type: AreaType
    subject_id: SubjectRef | None = None
    raised_by: OfficerId
    programme: Programme | None = None

    @model_validator(mode="after")
    def _consistent(self) -> IssueRaised:
        if not self.station.startswith(self.bureau):
            raise ValueError("station must belong to the bureau (its code starts with it)")
        if self.kind == Kind.COMPLAINT and self.category not in _COMPLAINT_CATEGORIES:
            raise ValueError("a complaint needs a complaint category")
        return self

    @property
    def source_ref(self) -> str:
        """The link back to what raised the case (contracts.md)."""
        return f"visits:{self.source_type}:{self.source_id}#{self.issue_id}"

    @property
    def demand(self) -> str:
        """The case's demand: a system text, since the citizen's words stay with visits."""
        where = {"visit": "走访", "engagement": "警民活动", "survey": "民意调查"}[self.source_type]
        return f"{where}中群众反映的问题（来源：{self.source_type} {self.source_id}）"
