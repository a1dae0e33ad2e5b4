"""The Engagement aggregate (警民互动): a forum, open day or outreach event and its opinions.

Held once, with its participants; opinions are recorded at the event or afterwards, and an
opinion that raises an issue becomes an `IssueRaised` fact like a visit's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jingmin_visits.domain.errors import IllegalTransition, InvalidCommand
from jingmin_visits.domain.facts import Fact, check_time
from jingmin_visits.domain.visit import ISSUE_RAISED, Issue, issue_facts
from jingmin_visits.domain.vocabulary import Feedback

HELD = "EngagementHeld"
OPINION = "OpinionRecorded"

EVENT_TYPES = (HELD, OPINION, ISSUE_RAISED)
MAX_OPINIONS = 50

_OPINION_NAMESPACE = uuid.UUID("0f3e9d8e-62a4-4b53-a5f8-1f2f0c1d9a77")


def opinion_id(engagement_id: str, number: int) -> str:
    return uuid.uuid5(_OPINION_NAMESPACE, f"{engagement_id}#{number}").hex


@dataclass(frozen=True)
class Opinion:
    """One participant's opinion; `text` arrives encrypted under `subject_id`."""

    feedback: Feedback
    subject_id: str | None
    text: Mapping[str, str] | None
    issue: Issue | None = None


@dataclass
class Engagement:
    engagement_id: str
    version: int = 0
    held: bool = False
    bureau: str = ""
    station: str = ""
    type: str = ""
    organiser: str = ""
    area_type: str = ""
    opinions: int = 0
    issues_raised: int = 0
    held_at: datetime | None = None

    @classmethod
    def from_history(
        cls, engagement_id: str, history: Iterable[tuple[str, Mapping[str, Any], datetime]]
    ) -> Engagement:
        engagement = cls(engagement_id)
        for type_, data, occurred_at in history:
            engagement.apply(Fact(type_, dict(data), occurred_at))
        return engagement

    def apply(self, fact: Fact) -> None:
        self.version += 1
        d = fact.data
        if fact.type == HELD:
            self.held = True
            self.bureau, self.station = d["bureau"], d["station"]
            self.type, self.organiser = d["type"], d["organiser"]
            self.area_type = d["area_type"]
            self.held_at = fact.occurred_at
        elif fact.type == OPINION:
            self.opinions += 1
        elif fact.type == ISSUE_RAISED:
            self.issues_raised += 1

    def hold(
        self,
        data: Mapping[str, Any],
        opinions: Sequence[Opinion],
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        if self.held:
            raise IllegalTransition(f"engagement {self.engagement_id} already exists")
        check_time(occurred_at, now, None, "engagement")
        if not str(data["station"]).startswith(str(data["bureau"])):
            raise InvalidCommand("station must belong to the bureau (its code starts with it)")
        held = Fact(HELD, dict(data), occurred_at)
        if not opinions:
            return [held]
        # The opinions need the held state (organiser, counts); decide them on a copy so
        # this aggregate changes only when the caller applies the facts.
        after = Engagement(self.engagement_id)
        after.apply(held)
        return [held, *after.record(opinions, occurred_at, now)]

    def record(
        self, opinions: Sequence[Opinion], occurred_at: datetime, now: datetime
    ) -> list[Fact]:
        """Opinions heard at the event (or written down later), each with its issue if any."""
        if not self.held:
            raise IllegalTransition(f"engagement {self.engagement_id} does not exist")
        if not opinions:
            raise InvalidCommand("no opinions to record")
        if self.opinions + len(opinions) > MAX_OPINIONS:
            raise InvalidCommand(f"at most {MAX_OPINIONS} opinions per engagement")
        if self.held_at is not None and occurred_at < self.held_at:
            raise InvalidCommand("an opinion cannot be recorded before the event was held")
        check_time(occurred_at, now, None, "engagement")
        facts: list[Fact] = []
        number, issues = self.opinions, self.issues_raised
        context = {"programme": self.type, "raised_by": self.organiser}
        for opinion in opinions:
            number += 1
            data: dict[str, Any] = {
                "opinion_id": opinion_id(self.engagement_id, number),
                "feedback": Feedback(opinion.feedback).value,
                "raises_issue": opinion.issue is not None,
                "has_text": opinion.text is not None,
            }
            if opinion.subject_id is not None:
                data["subject_id"] = opinion.subject_id
            if opinion.text is not None:
                data["text"] = dict(opinion.text)
            facts.append(Fact(OPINION, data, occurred_at))
            if opinion.issue is not None:
                issues += 1
                raised = issue_facts(
                    "engagement",
                    self.engagement_id,
                    issues,
                    [opinion.issue],
                    {**context, "subject_id": opinion.subject_id},
                    occurred_at,
                )
                facts.extend(raised)
        return facts
