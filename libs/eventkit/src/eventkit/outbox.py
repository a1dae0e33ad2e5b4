"""Build outbox rows (CloudEvents in binary mode) from recorded events."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

from eventkit.envelope import CONTENT_TYPE, Envelope
from eventkit.store import OutboxMessage, RecordedEvent


def envelope_for(
    event: RecordedEvent,
    *,
    source: str,
    type_: str,
    data: Mapping[str, Any],
    dataschema: str | None = None,
    subject: str | None = None,
    derived: str | None = None,
) -> Envelope:
    """The integration envelope of a stored event.

    ce_id is the stored event id: a relay retry and a replay years later send the same id,
    which is what lets every consumer drop duplicates. A second message made from the same
    event (`derived` names it, e.g. a partner's view) gets an id derived from both, just as
    stable, so no two messages ever share an id.
    """
    meta = event.metadata
    return Envelope(
        id=event.event_id
        if derived is None
        else str(uuid.uuid5(uuid.UUID(event.event_id), derived)),
        source=source,
        type=type_,
        subject=subject or event.stream_id,
        time=event.occurred_at,
        data=data,
        dataschema=dataschema,
        bureau=event.bureau,
        streamid=event.stream_id,
        streamversion=event.version,
        correlationid=meta.get("correlation_id"),
        causationid=meta.get("causation_id"),
        traceparent=meta.get("traceparent"),
    )


def message_for(event: RecordedEvent, envelope: Envelope, topic: str) -> OutboxMessage:
    headers = {f"ce_{k}": v for k, v in envelope.attributes().items()}
    headers["content-type"] = CONTENT_TYPE
    return OutboxMessage(
        event_id=envelope.id,
        aggregate_type=event.stream_type,
        aggregate_id=envelope.key,
        type=envelope.type,
        topic=topic,
        payload=dict(envelope.data),
        headers=headers,
    )


def public_data(event: RecordedEvent, id_field: str, keep: Sequence[str]) -> dict[str, Any]:
    """The published body: identity, unit and event time, then only allow-listed fields.

    An allow-list, not a deny-list: free text and personal fields (stored encrypted) never
    leave the service, not even as ciphertext, unless a contract names them.
    """
    data: dict[str, Any] = {
        id_field: event.stream_id,
        "bureau": event.bureau,
        "station": event.data.get("station", ""),
        # In UTC: the relay sees the offset the client sent, replay the one Postgres returns.
        "occurred_at": event.occurred_at.astimezone(UTC).isoformat(),
    }
    for key in keep:
        if event.data.get(key) is not None:
            data[key] = event.data[key]
    return data


def single_message(
    event: RecordedEvent,
    *,
    source: str,
    type_: str,
    data: Mapping[str, Any],
    topic: str,
    derived: str | None = None,
) -> list[OutboxMessage]:
    """One CloudEvent for one stored event, with its schema's URN as `dataschema`."""
    envelope = envelope_for(
        event,
        source=source,
        type_=type_,
        data=data,
        dataschema=f"urn:jingmin:schema:{type_}",
        derived=derived,
    )
    return [message_for(event, envelope, topic)]
