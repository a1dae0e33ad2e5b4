"""Maps stored events to the published contracts (`intake.case.events.v1`, `intake.unit.events.v1`).

Only allow-listed fields leave the service: free text and personal fields are stored
encrypted and never copied here, so no topic carries them, even as ciphertext.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventkit import outbox
from eventkit.store import OutboxMessage, RecordedEvent

from jingmin_intake.domain import case as events
from jingmin_intake.domain import unit
from jingmin_intake.integration import hotline

SOURCE = "/jingmin/intake"
TOPIC = "intake.case.events.v1"
# The unit register on a topic of its own: case consumers (metrics, visits, complaints)
# need not learn to skip it, and a board that names units reads only this.
UNIT_TOPIC = "intake.unit.events.v1"
DEAD_LETTER_TOPIC = "intake.dlq.v1"
VERSION = 1

PUBLIC_FIELDS: dict[str, tuple[str, ...]] = {
    events.RECEIVED: (
        "channel",
        "kind",
        "priority",
        "area_type",
        "branch",
        "party_category",
        "category",
        "subject_id",
        "deadlines",
        "hours_type",
        "appointment_at",
        "source_ref",
        "committed_due_at",
    ),
    events.FIRST_CONTACT: ("officer_id", "unit", "in_remit", "deadlines"),
    events.DISPATCHED: ("unit", "officer_ids", "deadlines"),
    events.ARRIVED: ("officer_id",),
    events.SERVICE_VISIT: (
        "visit_number",
        "missing_materials",
        "appointment_at",
        "hours_type",
        "deadlines",
    ),
    events.TRANSFERRED: ("target_type", "target", "person_informed"),
    events.ESCALATED: ("target",),
    events.RESOLVED: ("one_visit", "service_visits"),
    events.REJECTED: ("reason",),
    events.REOPENED: ("reason", "deadlines"),
    events.CLOSED: (),
    events.BREACHED: ("deadline", "due_at"),
    events.ENFORCEMENT_DECIDED: ("decision",),
    events.CLASSIFIED: ("crime_victim", "preventable", "category"),
}


UNIT_FIELDS: dict[str, tuple[str, ...]] = {
    unit.REGISTERED: ("kind", "parent", "name"),
    unit.RENAMED: ("old_name", "new_name"),
    unit.RETIRED: (),
}


def ce_type(stored_type: str) -> str:
    return f"jingmin.intake.{stored_type}.v{VERSION}"


CASE_TYPES: tuple[str, ...] = tuple(ce_type(t) for t in PUBLIC_FIELDS)
UNIT_TYPES: tuple[str, ...] = tuple(ce_type(t) for t in UNIT_FIELDS)
EVENT_TYPES: tuple[str, ...] = (*CASE_TYPES, *UNIT_TYPES, hotline.TYPE)
TYPES_BY_TOPIC = {TOPIC: CASE_TYPES, UNIT_TOPIC: UNIT_TYPES, hotline.TOPIC: (hotline.TYPE,)}


def public_data(event: RecordedEvent) -> dict[str, Any]:
    if event.type in UNIT_FIELDS:
        return outbox.public_data(event, "code", UNIT_FIELDS[event.type])
    return outbox.public_data(event, "case_id", PUBLIC_FIELDS[event.type])


def to_messages(event: RecordedEvent) -> Sequence[OutboxMessage]:
    if event.type in UNIT_FIELDS:
        return outbox.single_message(
            event,
            source=SOURCE,
            type_=ce_type(event.type),
            data=public_data(event),
            topic=UNIT_TOPIC,
        )
    messages = list(
        outbox.single_message(
            event, source=SOURCE, type_=ce_type(event.type), data=public_data(event), topic=TOPIC
        )
    )
    shared = hotline.data_of(event)
    if shared is not None:
        # Its own ce_id, derived from the event's, so a replay sends the same one again.
        messages += outbox.single_message(
            event,
            source=hotline.SOURCE,
            type_=hotline.TYPE,
            data=shared,
            topic=hotline.TOPIC,
            derived=hotline.TOPIC,
        )
    return messages
