"""Maps stored events to the published contracts: complaints on one topic, supervision on another.

Only allow-listed fields leave the service: the complainant's identity, the complaint's
narrative, investigators' notes and the officers named in complaints or accountability
actions stay in this service's store (personal fields encrypted), never on a topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventkit import outbox
from eventkit.store import OutboxMessage, RecordedEvent

from jingmin_complaints.domain import complaint as c
from jingmin_complaints.domain import supervision as s

SOURCE = "/jingmin/complaints"
COMPLAINT_TOPIC = "complaints.complaint.events.v1"
SUPERVISION_TOPIC = "complaints.supervision.events.v1"
DEAD_LETTER_TOPIC = "complaints.dlq.v1"
INTAKE_TOPIC = "intake.case.events.v1"
CALLBACK_TOPIC = "visits.callback.events.v1"
VERSION = 1

COMPLAINT_FIELDS: dict[str, tuple[str, ...]] = {
    c.RECEIVED: (
        "channel",
        "category",
        "subject_unit",
        "level",
        "anonymous",
        "subject_id",
        "intake_case_id",
        "callback_id",
        "related_case_id",
        "party_category",
        "deadlines",
    ),
    c.ACKNOWLEDGED: ("subject_unit", "level", "category", "deadlines"),
    c.ASSIGNED: ("investigator_unit", "reassigned"),
    c.EXTENDED: ("reason", "previous_due_at", "deadlines"),
    c.CONCLUDED: (
        "outcome",
        "actions",
        "channel",
        "category",
        "subject_unit",
        "level",
        "on_time",
        "subject_id",
    ),
    c.REPLIED: ("mode",),
    c.CLOSED: ("fixed",),
    c.REOPENED: ("reason", "deadlines"),
    c.REMEDIED: ("remedy",),
    c.OVERDUE: ("deadline", "due_at", "level"),
    c.ESCALATED: ("deadline", "from_level", "to_level", "to_unit"),
}

SUPERVISION_FIELDS: dict[str, tuple[str, ...]] = {
    s.ISSUED: (
        "order_type",
        "item_type",
        "item_id",
        "owner_unit",
        "level",
        "due_at",
        "case_id",
        "callback_id",
        "subject_id",
    ),
    s.REPORTED: ("on_time",),
    s.RETURNED: ("reason", "due_at"),
    s.CLOSED: ("verdict", "order_type", "escalations"),
    s.OVERDUE: ("due_at", "level", "owner_unit"),
    s.ESCALATED: ("from_level", "to_level", "to_unit", "due_at"),
    s.FOLLOW_UP: ("case_id", "callback_id", "subject_id"),
    s.INSPECTION_STARTED: ("kind", "unit", "period", "sample_size"),
    s.FINDING: ("finding_no", "code", "severity", "item_type", "item_id"),
    s.INSPECTION_COMPLETED: ("findings", "deficiencies", "violations"),
    # The officer an action names stays here: officer-level records are for drill-down.
    s.ACCOUNTABILITY: ("kind", "unit", "basis_type", "basis_id"),
}

_ID_FIELD = {
    "complaint": "complaint_id",
    "supervision_order": "order_id",
    "inspection": "inspection_id",
    "accountability": "action_id",
}


def ce_type(event: RecordedEvent | str, stream_type: str | None = None) -> str:
    stored = event if isinstance(event, str) else event.type
    kind = stream_type or (event.stream_type if not isinstance(event, str) else "complaint")
    context = "complaints" if kind == "complaint" else "supervision"
    return f"jingmin.{context}.{stored}.v{VERSION}"


COMPLAINT_TYPES: tuple[str, ...] = tuple(f"jingmin.complaints.{t}.v1" for t in COMPLAINT_FIELDS)
SUPERVISION_TYPES: tuple[str, ...] = tuple(
    f"jingmin.supervision.{t}.v1" for t in SUPERVISION_FIELDS
)
EVENT_TYPES: tuple[str, ...] = (*COMPLAINT_TYPES, *SUPERVISION_TYPES)
TYPES_BY_TOPIC: dict[str, tuple[str, ...]] = {
    COMPLAINT_TOPIC: COMPLAINT_TYPES,
    SUPERVISION_TOPIC: SUPERVISION_TYPES,
}


def public_data(event: RecordedEvent) -> dict[str, Any]:
    complaint = event.stream_type == "complaint"
    fields = (COMPLAINT_FIELDS if complaint else SUPERVISION_FIELDS)[event.type]
    data = outbox.public_data(event, _ID_FIELD[event.stream_type], fields)
    if complaint and event.data.get("anonymous"):
        # An anonymous complainant's random reference links to nothing; leave it out.
        data.pop("subject_id", None)
    return data


def to_messages(event: RecordedEvent) -> Sequence[OutboxMessage]:
    topic = COMPLAINT_TOPIC if event.stream_type == "complaint" else SUPERVISION_TOPIC
    return outbox.single_message(
        event, source=SOURCE, type_=ce_type(event), data=public_data(event), topic=topic
    )
