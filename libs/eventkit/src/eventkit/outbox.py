"""Build outbox rows (CloudEvents in binary mode) from recorded events."""

from __future__ import annotations

from collections.abc import Mapping
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
) -> Envelope:
    """The integration envelope of a stored event.

    ce_id is the stored event id: a relay retry and a replay years later send the same id,
    which is what lets every consumer drop duplicates.
    """
    meta = event.metadata
    return Envelope(
        id=event.event_id,
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
