"""The CloudEvents envelope survives Kafka binary mode, rejects malformed records, and
speaks the same wire format as the official CloudEvents SDK."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event, to_binary_event
from cloudevents.core.v1.event import CloudEvent
from eventkit.envelope import Envelope, EnvelopeError

BEIJING = timezone(timedelta(hours=8))


def full_envelope() -> Envelope:
    return Envelope(
        id="5f0c6a1e-0d7b-4f7e-9a53-2b1f3c4d5e6f",
        source="/jingmin/intake",
        type="jingmin.intake.CaseReceived.v1",
        subject="case-42",
        time=datetime(2024, 5, 1, 8, 30, 15, 123456, tzinfo=BEIJING),
        data={
            "summary": "群众反映夜间施工噪音",
            "count": 3,
            "tags": ["噪音", "夜间"],
            "nested": {"派出所": "城关"},
        },
        dataschema="https://jingmin.example/schemas/CaseReceived/1.json",
        bureau="城关派出所",
        streamid="case-42",
        streamversion=7,
        correlationid="corr-1",
        causationid="cause-1",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        extra={"tenant": "county9"},
    )


def wire(envelope: Envelope) -> tuple[bytes, list[tuple[str, bytes]]]:
    return envelope.kafka_value(), envelope.kafka_headers()


def without(headers: list[tuple[str, bytes]], name: str) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in headers if k != name]


def replaced(headers: list[tuple[str, bytes]], name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [*without(headers, name), (name, value)]


def test_round_trip_keeps_every_attribute_and_the_chinese_body() -> None:
    original = full_envelope()
    value, headers = wire(original)

    decoded = Envelope.from_kafka(value, headers)

    assert decoded == original
    assert decoded.data["summary"] == "群众反映夜间施工噪音"
    # The body is UTF-8 JSON, not \\u escapes: readable with kcat and half the size.
    assert "群众".encode() in value
    assert decoded.key == "case-42"


def test_time_goes_out_in_utc_with_z_and_microseconds() -> None:
    headers = dict(full_envelope().kafka_headers())
    assert headers["ce_time"] == b"2024-05-01T00:30:15.123456Z"
    assert headers["ce_specversion"] == b"1.0"
    assert headers["content-type"] == b"application/json"


def test_minimal_envelope_round_trips() -> None:
    original = Envelope(
        id="e-1",
        source="/s",
        type="t",
        subject="case-1",
        time=datetime(2024, 1, 1, tzinfo=UTC),
        data={},
    )
    decoded = Envelope.from_kafka(*wire(original))
    assert decoded == original
    assert "ce_bureau" not in dict(original.kafka_headers())
    assert decoded.key == "case-1"  # no stream id: the subject keys the record


def test_charset_parameter_on_content_type_is_accepted() -> None:
    value, headers = wire(full_envelope())
    headers = replaced(headers, "content-type", b"application/json; charset=utf-8")
    assert Envelope.from_kafka(value, headers).data["count"] == 3


@pytest.mark.parametrize("attribute", ["id", "source", "type", "specversion"])
def test_missing_required_attribute_is_rejected(attribute: str) -> None:
    value, headers = wire(full_envelope())
    with pytest.raises(EnvelopeError, match=f"missing CloudEvents attributes: {attribute}"):
        Envelope.from_kafka(value, without(headers, f"ce_{attribute}"))


def test_empty_required_attribute_is_rejected() -> None:
    value, headers = wire(full_envelope())
    with pytest.raises(EnvelopeError, match="missing"):
        Envelope.from_kafka(value, replaced(headers, "ce_id", b""))


def test_no_headers_at_all_is_rejected() -> None:
    with pytest.raises(EnvelopeError, match="id, source, type, specversion"):
        Envelope.from_kafka(b"{}", [])


def test_other_specversion_is_rejected() -> None:
    value, headers = wire(full_envelope())
    with pytest.raises(EnvelopeError, match="specversion"):
        Envelope.from_kafka(value, replaced(headers, "ce_specversion", b"0.3"))


@pytest.mark.parametrize("body", [b"{not json", b"", None, b"\xff\xfe\x00", b'{"a": 1'])
def test_body_that_is_not_json_is_rejected(body: bytes | None) -> None:
    _, headers = wire(full_envelope())
    with pytest.raises(EnvelopeError, match="not JSON"):
        Envelope.from_kafka(body, headers)


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null", b"true"])
def test_body_that_is_not_an_object_is_rejected(body: bytes) -> None:
    _, headers = wire(full_envelope())
    with pytest.raises(EnvelopeError, match="JSON object"):
        Envelope.from_kafka(body, headers)


@pytest.mark.parametrize(
    "content_type",
    [b"text/plain", b"application/xml", b"application/cloudevents+json", b"application/avro"],
)
def test_wrong_content_type_is_rejected(content_type: bytes) -> None:
    value, headers = wire(full_envelope())
    with pytest.raises(EnvelopeError, match="content type"):
        Envelope.from_kafka(value, replaced(headers, "content-type", content_type))


def test_header_that_is_not_utf8_is_rejected() -> None:
    value, headers = wire(full_envelope())
    with pytest.raises(EnvelopeError, match="UTF-8"):
        Envelope.from_kafka(value, replaced(headers, "ce_subject", b"\xff\xfe"))


@pytest.mark.parametrize(
    ("name", "bad"), [("ce_streamversion", b"seven"), ("ce_time", b"yesterday")]
)
def test_malformed_attribute_value_is_rejected(name: str, bad: bytes) -> None:
    value, headers = wire(full_envelope())
    with pytest.raises(EnvelopeError, match="bad attribute value"):
        Envelope.from_kafka(value, replaced(headers, name, bad))


def test_naive_time_cannot_be_sent() -> None:
    envelope = Envelope(
        id="e", source="/s", type="t", subject="x", time=datetime(2024, 1, 1), data={}
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        envelope.kafka_headers()


def test_unknown_ce_headers_are_kept_as_extensions_and_other_headers_ignored() -> None:
    value, headers = wire(full_envelope())
    headers += [("ce_region", b"west"), ("x-forwarded-by", b"mirror")]
    decoded = Envelope.from_kafka(value, headers)
    assert decoded.extra == {"tenant": "county9", "region": "west"}
    assert dict(decoded.kafka_headers())["ce_region"] == b"west"


# ----------------------------------------------------------------- official SDK interop


def sdk_decode(envelope: Envelope) -> CloudEvent:
    value, headers = wire(envelope)
    event = from_binary_event(
        KafkaMessage(headers=dict(headers), key=envelope.key.encode(), value=value)
    )
    assert isinstance(event, CloudEvent)
    return event


def test_official_sdk_decodes_our_headers() -> None:
    envelope = full_envelope()
    event = sdk_decode(envelope)

    assert event.get_id() == envelope.id
    assert event.get_source() == "/jingmin/intake"
    assert event.get_type() == "jingmin.intake.CaseReceived.v1"
    assert event.get_specversion() == "1.0"
    assert event.get_subject() == "case-42"
    assert event.get_time() == envelope.time
    assert event.get_datacontenttype() == "application/json"
    assert event.get_dataschema() == envelope.dataschema
    assert event.get_data() == envelope.data
    for name, expected in [
        ("bureau", "城关派出所"),
        ("streamid", "case-42"),
        ("streamversion", "7"),
        ("correlationid", "corr-1"),
        ("causationid", "cause-1"),
        ("traceparent", envelope.traceparent),
        ("tenant", "county9"),
        ("partitionkey", "case-42"),
    ]:
        assert event.get_extension(name) == expected, name


def test_we_decode_what_the_official_sdk_encodes() -> None:
    time = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    event = CloudEvent(
        attributes={
            "id": "sdk-1",
            "source": "/elsewhere",
            "type": "org.example.Ping",
            "subject": "thing-9",
            "time": time,
            "datacontenttype": "application/json",
            "bureau": "南关派出所",
            "streamversion": "3",
        },
        data={"问候": "你好"},
    )
    message = to_binary_event(event)

    decoded = Envelope.from_kafka(message.value, list(message.headers.items()))

    assert (decoded.id, decoded.source, decoded.type, decoded.subject) == (
        "sdk-1",
        "/elsewhere",
        "org.example.Ping",
        "thing-9",
    )
    assert decoded.time == time
    assert decoded.bureau == "南关派出所"
    assert decoded.streamversion == 3
    assert decoded.data == {"问候": "你好"}


def test_envelope_read_without_subject_re_encodes_as_a_valid_cloudevent() -> None:
    # A foreign producer may omit the optional subject; forwarding what we decoded (to a
    # DLQ, a bridge, a replay) must still be a CloudEvent.
    original = full_envelope()
    value, headers = wire(original)
    decoded = Envelope.from_kafka(value, without(headers, "ce_subject"))
    sdk_decode(decoded)
