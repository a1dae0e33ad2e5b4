"""A partner agency's subscriber: read Jingmin topics, check every event against its schema.

Reads CloudEvents in Kafka binary mode (ce_* headers, JSON body), validates each body
against the JSON Schema its ce_type names (the published contracts/ folder), drops
redeliveries by ce_id, and prints one JSON line per event. Offsets are committed only
after a batch has been handled, so a crash re-reads rather than skips (at-least-once; the
ce_id check makes handling idempotent).

    pip install -r requirements.txt
    python subscriber.py --bootstrap kafka.example.gov.cn:9094 \
        --security-protocol SASL_SSL --sasl-username hotline-12345 \
        --sasl-password-file ./password --ssl-cafile ./jingmin-ca.crt \
        --group partner.hotline-12345.cases --schemas ./contracts \
        --topic intake.hotline12345.public.v1

Exit status: 0 when every event was valid, 1 when some were not (with --strict, at the
first one), 2 on a usage or connection error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from cloudevents.v1.kafka import KafkaMessage, from_binary
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from kafka import KafkaConsumer, TopicPartition

SCHEMA_FILE = re.compile(r"^(?P<event>[A-Z][A-Za-z0-9]*)\.v(?P<version>[0-9]+)\.json$")
# The headers every Jingmin event carries (docs/partners.md, "CloudEvents headers").
REQUIRED_HEADERS = ("ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time", "content-type")


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # "type" reports non-strings
    # RFC 3339 needs a date, a time and an offset; fromisoformat alone accepts less.
    if not re.fullmatch(
        r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", value
    ):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return False
    return True


FORMATS = FormatChecker()
FORMATS.checks("date-time")(_date_time)


class Schemas:
    """The published contracts: `<ctx>/<Event>.v<N>.json` holds type jingmin.<ctx>.<Event>.v<N>."""

    def __init__(self, root: Path) -> None:
        self.validators: dict[str, Draft202012Validator] = {}
        self.ids: dict[str, str] = {}
        for path in sorted(root.glob("*/*.json")):
            match = SCHEMA_FILE.match(path.name)
            if not match:
                continue
            type_ = f"jingmin.{path.parent.name}.{match['event']}.v{match['version']}"
            schema = json.loads(path.read_text(encoding="utf-8"))
            Draft202012Validator.check_schema(schema)
            self.validators[type_] = Draft202012Validator(schema, format_checker=FORMATS)
            self.ids[type_] = str(schema.get("$id", ""))
        if not self.validators:
            raise FileNotFoundError(f"no <context>/<Event>.v<N>.json schema under {root}")

    def check(self, type_: str, dataschema: str | None, data: Any) -> list[str]:
        """Every problem with one event's body; empty when it conforms."""
        validator = self.validators.get(type_)
        if validator is None:
            return [f"unknown event type {type_!r}: no schema (are your contracts current?)"]
        problems = []
        if dataschema and dataschema != self.ids[type_]:
            problems.append(f"ce_dataschema {dataschema} is not {self.ids[type_]}")
        errors: Iterable[ValidationError] = validator.iter_errors(data)
        for error in sorted(errors, key=lambda e: list(e.absolute_path)):
            where = "/".join(map(str, error.absolute_path)) or "(body)"
            problems.append(f"{where}: {error.message}")
        return problems


def decode(record: Any, schemas: Schemas) -> tuple[dict[str, Any], list[str]]:
    """One Kafka record as a JSON-ready dict, and what is wrong with it."""
    headers = {k: v for k, v in (record.headers or []) if v is not None}
    problems = [f"missing header {h}" for h in REQUIRED_HEADERS if h not in headers]
    out: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key.decode() if record.key is not None else None,
    }
    try:
        event = from_binary(KafkaMessage(headers=headers, key=record.key, value=record.value))
    except Exception as exc:  # the SDK raises several types for a malformed message
        return out, [*problems, f"not a binary-mode CloudEvent: {exc}"]
    attributes = event.get_attributes()
    out.update(
        id=attributes.get("id"),
        type=attributes.get("type"),
        source=attributes.get("source"),
        subject=attributes.get("subject"),
        time=attributes.get("time"),
        bureau=attributes.get("bureau"),
        data=event.get_data(),
    )
    if attributes.get("specversion") != "1.0":
        problems.append(f"specversion {attributes.get('specversion')!r} is not 1.0")
    if attributes.get("datacontenttype") != "application/json":
        problems.append(
            f"content-type {attributes.get('datacontenttype')!r} is not application/json"
        )
    if not isinstance(out["data"], dict):
        problems.append("the body is not a JSON object")
    else:
        problems += schemas.check(str(out["type"]), attributes.get("dataschema"), out["data"])
    return out, problems


def _consumer(args: argparse.Namespace) -> KafkaConsumer:
    options: dict[str, Any] = {
        "bootstrap_servers": args.bootstrap,
        "client_id": args.client_id,
        "group_id": args.group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "security_protocol": args.security_protocol,
        "consumer_timeout_ms": 500,
    }
    if args.security_protocol.startswith("SASL"):
        password = os.environ.get("KAFKA_PASSWORD")
        if args.sasl_password_file:
            password = Path(args.sasl_password_file).read_text().strip()
        if not args.sasl_username or not password:
            raise SystemExit("SASL needs --sasl-username and a password (file or KAFKA_PASSWORD)")
        options.update(
            sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username=args.sasl_username,
            sasl_plain_password=password,
        )
    if args.ssl_cafile:
        options["ssl_cafile"] = args.ssl_cafile
    if args.group:
        # Short group timeouts: a restarted subscriber gets its partitions back quickly.
        options.update(session_timeout_ms=10000, heartbeat_interval_ms=1000)
        return KafkaConsumer(*args.topic, **options)
    # No group: read every partition from the start and commit nothing (a one-off backfill).
    consumer = KafkaConsumer(**options)
    partitions = [
        TopicPartition(topic, p)
        for topic in args.topic
        for p in sorted(_partitions(consumer, topic))
    ]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    return consumer


def _partitions(consumer: KafkaConsumer, topic: str) -> set[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        consumer.topics()  # refresh metadata
        time.sleep(0.2)
    raise SystemExit(f"topic {topic} not found (or not readable with these credentials)")


def run(args: argparse.Namespace, out: Any = sys.stdout, err: Any = sys.stderr) -> int:
    schemas = Schemas(Path(args.schemas))
    consumer = _consumer(args)
    # CloudEvents identify an event by (source, id), so that is what a copy repeats.
    seen: set[tuple[str, str]] = set()
    counts = {"received": 0, "valid": 0, "invalid": 0, "duplicates": 0}
    last_message = time.monotonic()
    try:
        while True:
            batches = consumer.poll(timeout_ms=500, max_records=500)
            for records in batches.values():
                for record in records:
                    counts["received"] += 1
                    event, problems = decode(record, schemas)
                    identity = (str(event.get("source")), str(event.get("id")))
                    if identity in seen:
                        counts["duplicates"] += 1  # a redelivery or a replay: already handled
                        continue
                    if problems:
                        counts["invalid"] += 1
                        print(
                            json.dumps({**event, "errors": problems}, ensure_ascii=False), file=err
                        )
                        if args.strict:
                            return 1
                        continue
                    seen.add(identity)
                    counts["valid"] += 1
                    print(json.dumps(event, ensure_ascii=False), file=out, flush=True)
            if batches:
                last_message = time.monotonic()
                if args.group:
                    consumer.commit()  # after handling: a crash re-reads, never skips
            if args.max_messages and counts["valid"] + counts["invalid"] >= args.max_messages:
                break
            if args.idle_timeout and time.monotonic() - last_message > args.idle_timeout:
                break
    finally:
        consumer.close()
        print(json.dumps({"summary": counts}), file=err, flush=True)
    return 1 if counts["invalid"] else 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:19094")
    )
    parser.add_argument("--topic", action="append", required=True, help="repeat for several topics")
    parser.add_argument(
        "--group",
        help="consumer group; a partner may only use groups named partner.<its name>.*; "
        "leave out to read everything from the start without committing",
    )
    parser.add_argument("--client-id", default="jingmin-partner-subscriber")
    parser.add_argument("--schemas", default="contracts", help="the published contracts/ folder")
    parser.add_argument(
        "--security-protocol",
        default="PLAINTEXT",
        choices=["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"],
    )
    parser.add_argument("--sasl-username")
    parser.add_argument("--sasl-password-file", help="else the KAFKA_PASSWORD variable")
    parser.add_argument("--ssl-cafile", help="the platform's CA certificate (PEM)")
    parser.add_argument(
        "--max-messages", type=int, default=0, help="stop after this many (0: never)"
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=0,
        help="stop after this many seconds without a message",
    )
    parser.add_argument("--strict", action="store_true", help="stop at the first invalid event")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
