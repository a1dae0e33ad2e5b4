"""The Callback aggregate (回访): one follow-up of a resolved matter, by policy.

Its id is derived from what triggered it, so a redelivered or replayed trigger finds the
stream already there and cannot create a second callback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jingmin_visits.domain.errors import IllegalTransition, InvalidCommand
from jingmin_visits.domain.facts import Fact, check_time
from jingmin_visits.domain.policy import CallbackPolicy
from jingmin_visits.domain.vocabulary import (
    AttemptOutcome,
    Purpose,
    Satisfaction,
    Security,
    Status,
    SuppressionReason,
)

# Stored event names: stable, explicit, never derived from class or module names.
SCHEDULED = "CallbackScheduled"
SUPPRESSED = "CallbackSuppressed"
ATTEMPTED = "CallbackAttempted"
ANSWERED = "CallbackAnswered"
EXPIRED = "CallbackExpired"
SURVEY_SENT = "CallbackSurveySent"
ASSIGNED = "CallbackAssigned"

EVENT_TYPES = (SCHEDULED, SUPPRESSED, ATTEMPTED, ANSWERED, EXPIRED, SURVEY_SENT, ASSIGNED)


def callback_id(case_id: str, trigger: str) -> str:
    """The one stream a trigger can open: `cb-<case id>-<trigger>`."""
    return f"cb-{case_id}-{trigger}"


@dataclass(frozen=True)
class Resolution:
    """What the visits side knows about a resolved matter when it decides on a callback."""

    case_id: str
    bureau: str
    station: str
    kind: str
    channel: str
    category: str | None
    subject_id: str | None
    resolved_at: datetime
    # Set when the trigger is not an intake resolution (a complaint concluded, a recovery).
    trigger: str | None = None
    # The service that lends the person's contact at call time, and its item (when not
    # the item the callback follows, e.g. a complaint opened from an intake case).
    contact_owner: str = "intake"
    contact_item: str | None = None
    # A category learnt after receipt (a case classified as, say, a sexual offence): it
    # suppresses as the receipt's own category does.
    classified_category: str | None = None


@dataclass
class Callback:
    callback_id: str
    version: int = 0
    status: Status | None = None
    case_id: str = ""
    bureau: str = ""
    station: str = ""
    subject_id: str | None = None
    trigger: str = ""
    mode: str = ""
    purpose: str = Purpose.SURVEY
    due_at: datetime | None = None
    expires_at: datetime | None = None
    attempts: int = 0
    contact_owner: str = "intake"
    contact_item: str = ""
    assignee: str | None = None
    survey_sent: bool = False
    last_occurred_at: datetime | None = None

    @classmethod
    def from_history(
        cls, callback_id: str, history: Iterable[tuple[str, Mapping[str, Any], datetime]]
    ) -> Callback:
        callback = cls(callback_id)
        for type_, data, occurred_at in history:
            callback.apply(Fact(type_, dict(data), occurred_at))
        return callback

    def apply(self, fact: Fact) -> None:
        self.version += 1
        d = fact.data
        self.last_occurred_at = fact.occurred_at
        if fact.type in (SCHEDULED, SUPPRESSED):
            self.case_id, self.trigger = d["case_id"], d["trigger"]
            self.bureau, self.station = d["bureau"], d["station"]
            self.subject_id = d.get("subject_id")
            self.contact_owner = d.get("contact_owner", "intake")
            self.contact_item = d.get("contact_item", self.case_id)
        if fact.type == SCHEDULED:
            self.status = Status.SCHEDULED
            self.mode = d["mode"]
            self.purpose = d.get("purpose", Purpose.SURVEY)
            self.due_at = datetime.fromisoformat(d["due_at"])
            self.expires_at = datetime.fromisoformat(d["expires_at"])
        elif fact.type == SUPPRESSED:
            self.status = Status.SUPPRESSED
        elif fact.type == ATTEMPTED:
            self.attempts = d["attempt"]
            if d["outcome"] == AttemptOutcome.DECLINED:
                self.status = Status.DECLINED
        elif fact.type == ANSWERED:
            self.status = Status.ANSWERED
        elif fact.type == EXPIRED:
            self.status = Status.EXPIRED
        elif fact.type == SURVEY_SENT:
            self.survey_sent = True
        elif fact.type == ASSIGNED:
            self.assignee = d["officer_id"]

    # ---- decisions ---------------------------------------------------------------------

    def _origin(self, r: Resolution, trigger: str) -> dict[str, Any]:
        if self.status is not None:
            raise IllegalTransition(f"callback {self.callback_id} already exists")
        if callback_id(r.case_id, trigger) != self.callback_id:
            raise InvalidCommand("the callback id does not match its trigger")
        data: dict[str, Any] = {
            "case_id": r.case_id,
            "trigger": trigger,
            "bureau": r.bureau,
            "station": r.station,
        }
        if r.subject_id:
            data["subject_id"] = r.subject_id
        if r.contact_owner != "intake":
            data["contact_owner"] = r.contact_owner
        if r.contact_item is not None and r.contact_item != r.case_id:
            data["contact_item"] = r.contact_item
        return data

    def decide(self, r: Resolution, policy: CallbackPolicy, opted_out: bool) -> list[Fact]:
        """Exactly one fact for a resolution: scheduled, or suppressed with its reason.

        Returns nothing when the policy has no callback for this kind of matter.
        """
        trigger = r.trigger or policy.trigger_for(r.kind)
        reason = policy.suppression_for(r.category) or policy.suppression_for(r.classified_category)
        if reason is None and opted_out:
            reason = SuppressionReason.OPTED_OUT
        if reason is not None:
            return [Fact(SUPPRESSED, {**self._origin(r, trigger), "reason": reason}, r.resolved_at)]
        rule = policy.rule_for(trigger, r.kind, r.channel)
        if rule is None:
            return []
        window_end = r.resolved_at + timedelta(seconds=rule.window_seconds)
        due = policy.out_of_quiet_hours(window_end)
        data = {
            **self._origin(r, trigger),
            "mode": rule.mode,
            "purpose": rule.purpose,
            "due_at": due.isoformat(),
            "expires_at": (due + timedelta(seconds=policy.expire_after_seconds)).isoformat(),
        }
        if due != window_end:
            data["original_due_at"] = window_end.isoformat()
        return [Fact(SCHEDULED, data, r.resolved_at)]

    def _require_open(self, action: str) -> None:
        if self.status is None:
            raise IllegalTransition(f"callback {self.callback_id} does not exist")
        if self.status != Status.SCHEDULED:
            raise IllegalTransition(f"cannot {action} a callback that is {self.status.value}")

    def _check_time(self, occurred_at: datetime, now: datetime) -> None:
        check_time(occurred_at, now, self.last_occurred_at, "callback")

    def attempt(self, outcome: AttemptOutcome, occurred_at: datetime, now: datetime) -> list[Fact]:
        self._require_open("record an attempt on")
        self._check_time(occurred_at, now)
        data = {"outcome": AttemptOutcome(outcome).value, "attempt": self.attempts + 1}
        return [Fact(ATTEMPTED, data, occurred_at)]

    def assign(self, officer_id: str, occurred_at: datetime, now: datetime) -> list[Fact]:
        """Give the call to an officer (their "my callbacks" list); reassigning is allowed."""
        self._require_open("assign")
        self._check_time(occurred_at, now)
        if officer_id == self.assignee:
            return []  # already theirs: nothing new happened
        return [Fact(ASSIGNED, {"officer_id": officer_id}, occurred_at)]

    def send_survey(self, link_expires_at: datetime, now: datetime) -> list[Fact]:
        """The SMS survey link went out (once per callback)."""
        self._require_open("send a survey for")
        if self.mode != "sms":
            raise IllegalTransition("only an SMS callback is surveyed by link")
        if self.survey_sent:
            raise IllegalTransition("the survey link was already sent")
        data = {"channel": "sms", "link_expires_at": link_expires_at.isoformat()}
        return [Fact(SURVEY_SENT, data, max(now, self.last_occurred_at or now))]

    def answer(
        self,
        satisfaction: Satisfaction,
        security: Security,
        sealed_comment: Mapping[str, str] | None,
        occurred_at: datetime,
        now: datetime,
        *,
        via: str = "officer",
        wants_complaint: bool = False,
        complaint_category: str | None = None,
    ) -> list[Fact]:
        """The survey's answer; the comment arrives already encrypted under the subject.

        `wants_complaint` is the person's own wish (a box on the page, or the officer
        noting that the comment is a complaint): the complaints service opens one.
        """
        self._require_open("answer")
        self._check_time(occurred_at, now)
        if complaint_category is not None and not wants_complaint:
            raise InvalidCommand("complaint_category is given only with wants_complaint")
        data: dict[str, Any] = {
            "satisfaction": Satisfaction(satisfaction).value,
            "security": Security(security).value,
            "has_comment": sealed_comment is not None,
            "via": via,
            "wants_complaint": wants_complaint,
            # What the answer is about, so its consumers (complaints, metrics) need no lookup.
            "case_id": self.case_id,
            "trigger": self.trigger,
        }
        if self.subject_id is not None:
            data["subject_id"] = self.subject_id
        if complaint_category is not None:
            data["complaint_category"] = complaint_category
        if sealed_comment is not None:
            data["comment"] = dict(sealed_comment)
        return [Fact(ANSWERED, data, occurred_at)]

    def expire(self, now: datetime) -> list[Fact]:
        """The window passed with no answer: recorded once, at the expiry time."""
        if self.status != Status.SCHEDULED or self.expires_at is None or now < self.expires_at:
            return []
        return [Fact(EXPIRED, {"expires_at": self.expires_at.isoformat()}, self.expires_at)]
