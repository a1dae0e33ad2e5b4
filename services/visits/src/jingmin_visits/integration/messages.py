"""Maps stored callback events to the published contract (`visits.callback.events.v1`).

Only allow-listed fields leave the service: the survey comment is stored encrypted and never
copied here, so no topic carries it, even as ciphertext.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventkit import outbox
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
    return outbox.public_data(event, "callback_id", PUBLIC_FIELDS[event.type])


def to_messages(event: RecordedEvent) -> Sequence[OutboxMessage]:
    return outbox.single_message(
        event, source=SOURCE, type_=ce_type(event.type), data=public_data(event), topic=TOPIC
    )
