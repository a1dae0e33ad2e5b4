"""Maps stored callback events to the published contract (`visits.callback.events.v1`).

Only allow-listed fields leave the service: the survey comment is stored encrypted and never
copied here, so no topic carries it, even as ciphertext.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from eventkit.outbox import envelope_for, message_for
from eventkit.store import OutboxMessage, RecordedEvent

from jingmin_visits.domain import callback as events

SOURCE = "/jingmin/visits"
TOPIC = "visits.callback.events.v1"
DEAD_LETTER_TOPIC = "visits.dlq.v1"
INTAKE_TOPIC = "intake.case.events.v1"
VERSION = 1

PUBLIC_FIELDS: dict[str, tuple[str, ...]] = {
    events.SCHEDULED: (
        "case_id",
        "trigger",
        "subject_id",
        "mode",
        "due_at",
        "original_due_at",
        "expires_at",
    ),
    events.SUPPRESSED: ("case_id", "trigger", "subject_id", "reason"),
    events.ATTEMPTED: ("outcome", "attempt"),
    events.ANSWERED: ("satisfaction", "security", "has_comment"),
    events.EXPIRED: ("expires_at",),
}


def ce_type(stored_type: str) -> str:
    return f"jingmin.visits.{stored_type}.v{VERSION}"


EVENT_TYPES: tuple[str, ...] = tuple(ce_type(t) for t in PUBLIC_FIELDS)


def public_data(event: RecordedEvent) -> dict[str, Any]:
    data: dict[str, Any] = {
        "callback_id": event.stream_id,
        "bureau": event.bureau,
        "station": event.data.get("station", ""),
        "occurred_at": event.occurred_at.astimezone(UTC).isoformat(),
    }
    for key in PUBLIC_FIELDS[event.type]:
        if key in event.data and event.data[key] is not None:
            data[key] = event.data[key]
    return data


def to_messages(event: RecordedEvent) -> Sequence[OutboxMessage]:
    type_ = ce_type(event.type)
    envelope = envelope_for(
        event,
        source=SOURCE,
        type_=type_,
        data=public_data(event),
        dataschema=f"urn:jingmin:schema:{type_}",
    )
    return [message_for(event, envelope, TOPIC)]
