"""CloudEvents 1.0 envelope and its Kafka binary-mode binding (ce_* headers, JSON body)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"

# Extension attribute names: CloudEvents requires lower-case alphanumerics only.
EXTENSIONS = ("bureau", "streamid", "streamversion", "correlationid", "causationid", "traceparent")
_REQUIRED = ("id", "source", "type", "specversion")


class EnvelopeError(ValueError):
    """A Kafka record that is not a well-formed binary-mode CloudEvent."""


def new_id() -> str:
    return str(uuid.uuid4())


def format_time(t: datetime) -> str:
    if t.tzinfo is None:
        raise ValueError("CloudEvents time must be timezone-aware")
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Envelope:
    """One integration event as it travels on a topic."""

    id: str
    source: str
    type: str
    subject: str
    time: datetime
    data: Mapping[str, Any]
    dataschema: str | None = None
    datacontenttype: str = CONTENT_TYPE
    specversion: str = SPECVERSION
    bureau: str | None = None
    streamid: str | None = None
    streamversion: int | None = None
    correlationid: str | None = None
    causationid: str | None = None
    traceparent: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Kafka key: the aggregate id, so one aggregate's events share a partition in order."""
        return self.streamid or self.subject

    def attributes(self) -> dict[str, str]:
        """Context attributes as strings, as they appear after the `ce_` prefix."""
        attrs: dict[str, str] = {
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "specversion": self.specversion,
            "time": format_time(self.time),
        }
        if self.subject:  # optional, and CloudEvents forbids an empty one
            attrs["subject"] = self.subject
        if self.dataschema:
            attrs["dataschema"] = self.dataschema
        for name in EXTENSIONS:
            value = getattr(self, name)
            if value is not None:
                attrs[name] = str(value)
        attrs.update(self.extra)
        return attrs

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        headers = [(f"ce_{k}", v.encode()) for k, v in self.attributes().items()]
        # Binary mode carries datacontenttype in the transport's own content-type header.
        headers.append(("content-type", self.datacontenttype.encode()))
        return headers

    def kafka_value(self) -> bytes:
        return json.dumps(self.data, ensure_ascii=False, separators=(",", ":")).encode()

    def with_trace(self, traceparent: str | None) -> Envelope:
        return replace(self, traceparent=traceparent)

    @classmethod
    def from_attributes(
        cls, attrs: Mapping[str, str], data: Mapping[str, Any], content_type: str = CONTENT_TYPE
    ) -> Envelope:
        missing = [a for a in _REQUIRED if not attrs.get(a)]
        if missing:
            raise EnvelopeError(f"missing CloudEvents attributes: {', '.join(missing)}")
        if attrs["specversion"] != SPECVERSION:
            raise EnvelopeError(f"unsupported specversion {attrs['specversion']!r}")
        known = {
            "id",
            "source",
            "type",
            "specversion",
            "subject",
            "time",
            "dataschema",
            *EXTENSIONS,
        }
        try:
            time = parse_time(attrs["time"]) if attrs.get("time") else datetime.now(UTC)
            version = int(attrs["streamversion"]) if attrs.get("streamversion") else None
        except ValueError as exc:
            raise EnvelopeError(f"bad attribute value: {exc}") from exc
        return cls(
            id=attrs["id"],
            source=attrs["source"],
            type=attrs["type"],
            subject=attrs.get("subject", ""),
            time=time,
            data=data,
            dataschema=attrs.get("dataschema"),
            datacontenttype=content_type,
            bureau=attrs.get("bureau"),
            streamid=attrs.get("streamid"),
            streamversion=version,
            correlationid=attrs.get("correlationid"),
            causationid=attrs.get("causationid"),
            traceparent=attrs.get("traceparent"),
            extra={k: v for k, v in attrs.items() if k not in known},
        )

    @classmethod
    def from_kafka(
        cls, value: bytes | None, headers: Sequence[tuple[str, bytes | None]]
    ) -> Envelope:
        attrs: dict[str, str] = {}
        content_type = CONTENT_TYPE
        try:
            for name, raw in headers:
                text = (raw or b"").decode()
                if name.startswith("ce_"):
                    attrs[name[3:]] = text
                elif name.lower() == "content-type":
                    content_type = text
        except UnicodeDecodeError as exc:
            raise EnvelopeError("header is not UTF-8") from exc
        if not content_type.startswith(CONTENT_TYPE):
            raise EnvelopeError(f"unsupported content type {content_type!r}")
        try:
            data = json.loads(value or b"")
        except (ValueError, UnicodeDecodeError) as exc:
            raise EnvelopeError(f"body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise EnvelopeError("body must be a JSON object")
        return cls.from_attributes(attrs, data, content_type)
