"""From a source record to the fact it adds to an item (faust-free, shared with tests)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from eventkit.envelope import Envelope, EnvelopeError

from jingmin_metrics.domain.facts import Fact, make_fact


@dataclass(frozen=True)
class ItemFact:
    key: bytes
    stream_id: str
    version: int
    fact: Fact


def headers_of(raw: Any) -> list[tuple[str, bytes | None]]:
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        return list(raw.items())
    return list(raw)


def envelope_of(
    record: Any, validate: Callable[[str, Mapping[str, Any]], None] | None = None
) -> Envelope:
    envelope = Envelope.from_kafka(record.value, headers_of(getattr(record, "headers", None)))
    if validate is not None and envelope.type.startswith("jingmin."):
        validate(envelope.type, envelope.data)
    return envelope


def item_fact(
    record: Any,
    regrouped: str,
    validate: Callable[[str, Mapping[str, Any]], None] | None = None,
) -> ItemFact | None:
    """The fact `record` adds to its item; None if it counts for nothing. Raises on a record
    that cannot be counted (it goes to the dead-letter topic)."""
    envelope = envelope_of(record, validate)
    if envelope.streamversion is None:
        raise EnvelopeError("no ce_streamversion: the event cannot be deduplicated")
    fact = make_fact(
        envelope.type,
        envelope.data,
        envelope.data.get("occurred_at") or envelope.attributes()["time"],
        envelope.bureau or envelope.data.get("bureau", ""),
        envelope.data.get("station", ""),
    )
    if fact is None:
        return None
    key = record.key if record.topic == regrouped else (envelope.streamid or "").encode()
    if not key:
        raise EnvelopeError("no item key")
    # Namespaced by context: a complaint opened from an intake case keeps the case's id.
    context = envelope.type.split(".")[1] if envelope.type.count(".") >= 3 else "?"
    stream_id = f"{context}:{envelope.streamid or envelope.subject}"
    return ItemFact(key, stream_id, envelope.streamversion, fact)
