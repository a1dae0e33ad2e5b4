"""Maps stored events to the published contracts: callbacks on `visits.callback.events.v1`,
visits, engagement events and the issues they raise on `visits.visit.events.v1`, survey
waves on `visits.survey.events.v1`.

Only allow-listed fields leave the service: survey comments, opinions, issue summaries and
personal fields are stored encrypted and never copied here, so no topic carries them, even
as ciphertext. A survey answer is published without the sampled unit it came from: the
frame that names the unit never leaves the service, and neither does the unit's id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventkit import outbox
from eventkit.store import OutboxMessage, RecordedEvent

from jingmin_visits.domain import callback as events
from jingmin_visits.domain import engagement, survey, visit

SOURCE = "/jingmin/visits"
TOPIC = "visits.callback.events.v1"
VISIT_TOPIC = "visits.visit.events.v1"
SURVEY_TOPIC = "visits.survey.events.v1"
DEAD_LETTER_TOPIC = "visits.dlq.v1"
INTAKE_TOPIC = "intake.case.events.v1"
VERSION = 1

PUBLIC_FIELDS: dict[str, tuple[str, ...]] = {
    events.SCHEDULED: (
        "case_id",
        "trigger",
        "subject_id",
        "mode",
        "purpose",
        "due_at",
        "original_due_at",
        "expires_at",
    ),
    events.SUPPRESSED: ("case_id", "trigger", "subject_id", "reason"),
    events.ATTEMPTED: ("outcome", "attempt"),
    events.ANSWERED: (
        "satisfaction",
        "security",
        "has_comment",
        "via",
        "wants_complaint",
        "complaint_category",
        "case_id",
        "trigger",
        "subject_id",
    ),
    events.EXPIRED: ("expires_at",),
    events.SURVEY_SENT: ("channel", "link_expires_at"),
    events.ASSIGNED: ("officer_id",),
}

VISIT_FIELDS: dict[str, tuple[str, ...]] = {
    visit.SCHEDULED: (
        "programme",
        "mode",
        "target_type",
        "area_type",
        "beat",
        "officer_id",
        "officer_rank",
        "subject_id",
        "planned_for",
    ),
    visit.COMPLETED: ("outcome", "feedback", "mode", "attempt", "issues_count", "has_opinions"),
    visit.FAILED: ("outcome", "attempt"),
    visit.RESCHEDULED: ("planned_for", "reason", "officer_id"),
    visit.ISSUE_RAISED: (
        "issue_id",
        "source_type",
        "kind",
        "category",
        "branch",
        "area_type",
        "subject_id",
        "raised_by",
        "programme",
    ),
    engagement.HELD: (
        "type",
        "venue",
        "organiser",
        "officer_ids",
        "participants",
        "beat",
    ),
    engagement.OPINION: ("opinion_id", "feedback", "raises_issue", "has_text"),
}

SURVEY_FIELDS: dict[str, tuple[str, ...]] = {
    survey.WAVE_DEFINED: (
        "period_start",
        "period_end",
        "questionnaire_version",
        "precision",
        "station_precision",
        "confidence",
        "expected_response_rate",
        "modes",
    ),
    survey.FRAME_IMPORTED: ("part", "part_size", "frame_size", "margins", "frame_digest"),
    survey.SAMPLE_DRAWN: (
        "seed",
        "algorithm",
        "frame_size",
        "frame_digest",
        "precision",
        "confidence",
        "expected_response_rate",
        "n0",
        "n_fpc",
        "sample_size",
        "do_not_contact_count",
    ),
    survey.ATTEMPT_RECORDED: (
        "mode",
        "outcome",
        "attempt",
        "answers",
        "has_comment",
        "previous_disposition",
        "disposition",
        "stratum",
        "previous_answers",
    ),
    # One SMS link went out to a sampled unit (which one stays here).
    survey.INVITATION_SENT: ("channel", "link_expires_at", "invitation"),
    # The audit of a de-anonymisation request (DOMAIN §6): who asked, and whether the
    # bureau's policy let them; never the unit, the person or the reason given.
    survey.ANSWER_LINKED: ("result", "requested_by", "role", "disposition"),
}

_ID_FIELD = {"visit": "visit_id", "engagement": "engagement_id"}
SURVEY_STREAM = "survey_wave"


def ce_type(stored_type: str) -> str:
    return f"jingmin.visits.{stored_type}.v{VERSION}"


CALLBACK_TYPES: tuple[str, ...] = tuple(ce_type(t) for t in PUBLIC_FIELDS)
VISIT_TYPES: tuple[str, ...] = tuple(ce_type(t) for t in VISIT_FIELDS)
SURVEY_TYPES: tuple[str, ...] = tuple(ce_type(t) for t in SURVEY_FIELDS)
EVENT_TYPES: tuple[str, ...] = CALLBACK_TYPES + VISIT_TYPES + SURVEY_TYPES
TYPES_BY_TOPIC = {TOPIC: CALLBACK_TYPES, VISIT_TOPIC: VISIT_TYPES, SURVEY_TOPIC: SURVEY_TYPES}


def public_data(event: RecordedEvent) -> dict[str, Any]:
    if event.type == visit.ISSUE_RAISED:
        # Keyed by what raised it (a visit, an engagement event or a survey wave); a survey's
        # issue carries no unit and no subject, so it cannot be joined to an answer.
        return outbox.public_data(event, "source_id", VISIT_FIELDS[event.type])
    if event.stream_type == SURVEY_STREAM:
        data = outbox.public_data(event, "wave_id", SURVEY_FIELDS[event.type])
        if not data["station"]:
            del data["station"]  # the wave's own facts belong to the bureau, not a station
        return data
    if event.stream_type == "callback":
        return outbox.public_data(event, "callback_id", PUBLIC_FIELDS[event.type])
    return outbox.public_data(event, _ID_FIELD[event.stream_type], VISIT_FIELDS[event.type])


def to_messages(event: RecordedEvent) -> Sequence[OutboxMessage]:
    # Issues go where intake reads them, whichever stream raised them.
    topic = (
        VISIT_TOPIC
        if event.type == visit.ISSUE_RAISED
        else {"callback": TOPIC, SURVEY_STREAM: SURVEY_TOPIC}.get(event.stream_type, VISIT_TOPIC)
    )
    return outbox.single_message(
        event, source=SOURCE, type_=ce_type(event.type), data=public_data(event), topic=topic
    )
