"""A partner agency's subscriber on librdkafka (confluent-kafka): read Jingmin's partner
topics, fetch each event's schema from its ce_dataschema, validate, print.

The same job as subscriber.py (kafka-python), with the client most agencies run: the
Confluent Python client, whose librdkafka is also what Java-free tools (kcat) and the .NET,
Go and Node librdkafka bindings use, so its configuration below carries over as it is.

- Decodes CloudEvents binary mode with the official SDK. cloudevents 2.x has two Kafka
  bindings: `cloudevents.core.bindings.kafka` (the 2.x API, used here: `KafkaMessage`,
  `from_binary_event`) and `cloudevents.v1.kafka` (the 1.x API kept for compatibility:
  `KafkaMessage`, `from_binary`, used by subscriber.py). `cloudevents.kafka`, the 1.x
  import path, no longer exists.
- Fetches the JSON Schema its `ce_dataschema` names: `<schema base URL><ce_dataschema>`,
  e.g. https://jingmin.example.gov.cn/schemas/urn:jingmin:schema:jingmin.intake.HotlineCaseStatusChanged.v1
  (once per type; `--schema-base-url`), and checks that the schema's `$id` is that header.
- Drops redeliveries by ce_id; commits offsets only after the events are handled.
- One JSON line per valid event on stdout, one per invalid event (with the reasons) on
  stderr, a summary on exit. Exit status 1 if any event was invalid, 2 on usage errors.

    pip install confluent-kafka==2.16.1 cloudevents==2.2.0 jsonschema==4.25.1
    python confluent_subscriber.py --bootstrap kafka.example.gov.cn:9094 \
        --security-protocol SASL_SSL --sasl-username hotline-12345 \
        --sasl-password-file ./password --ssl-cafile ./jingmin-ca.crt \
        --schema-base-url https://jingmin.example.gov.cn/schemas/ \
        --group partner.hotline-12345.cases --topic intake.hotline12345.public.v1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from collections.abc import Sequence
from typing import Any

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event
from confluent_kafka import Consumer, KafkaError, Message
from jsonschema import Draft202012Validator, FormatChecker

REQUIRED = ("ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time", "ce_dataschema")


class SchemaFetcher:
    """JSON Schemas by ce_dataschema, fetched once each over HTTP(S)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._validators: dict[str, Draft202012Validator] = {}

    def validator(self, dataschema: str) -> Draft202012Validator:
        if dataschema not in self._validators:
            url = self.base_url + dataschema
            with urllib.request.urlopen(url, timeout=10) as response:
                schema = json.loads(response.read())
            if schema.get("$id") != dataschema:
                raise ValueError(f"{url} is not the schema {dataschema} (its $id differs)")
            Draft202012Validator.check_schema(schema)
            self._validators[dataschema] = Draft202012Validator(
                schema, format_checker=FormatChecker()
            )
        return self._validators[dataschema]


def decode(message: Message, schemas: SchemaFetcher) -> tuple[dict[str, Any], list[str]]:
    headers = {k: v for k, v in (message.headers() or []) if v is not None}
    problems = [f"missing header {h}" for h in REQUIRED if h not in headers]
    key = message.key()
    out: dict[str, Any] = {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "key": key.decode() if isinstance(key, bytes) else key,
    }
    try:
        event = from_binary_event(KafkaMessage(headers=headers, key=key, value=message.value()))
    except Exception as exc:  # the SDK raises several types for a malformed message
        return out, [*problems, f"not a binary-mode CloudEvent: {exc}"]
    attributes = event.get_attributes()
    time_ = attributes.get("time")
    out.update(
        id=attributes.get("id"),
        type=attributes.get("type"),
        source=attributes.get("source"),
        subject=attributes.get("subject"),
        time=time_.isoformat() if hasattr(time_, "isoformat") else time_,
        bureau=attributes.get("bureau"),
        dataschema=attributes.get("dataschema"),
        data=event.get_data(),
    )
    if attributes.get("specversion") != "1.0":
        problems.append(f"specversion {attributes.get('specversion')!r} is not 1.0")
    if not isinstance(out["data"], dict):
        return out, [*problems, "the body is not a JSON object"]
    dataschema = out["dataschema"]
    if not dataschema:
        return out, problems
    try:
        validator = schemas.validator(str(dataschema))
    except Exception as exc:
        return out, [*problems, f"cannot fetch the schema {dataschema}: {exc}"]
    problems += [
        f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
        for e in validator.iter_errors(out["data"])
    ]
    return out, problems


def consumer_config(args: argparse.Namespace) -> dict[str, Any]:
    """librdkafka's configuration: the same keys in every librdkafka-based client."""
    config: dict[str, Any] = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "security.protocol": args.security_protocol,
    }
    if args.security_protocol.startswith("SASL"):
        with open(args.sasl_password_file, encoding="utf-8") as f:
            password = f.read().strip()
        config |= {
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": args.sasl_username,
            "sasl.password": password,
        }
    if args.ssl_cafile:
        config["ssl.ca.location"] = args.ssl_cafile
    return config


def run(args: argparse.Namespace, out: Any = sys.stdout, err: Any = sys.stderr) -> int:
    schemas = SchemaFetcher(args.schema_base_url)
    consumer = Consumer(consumer_config(args))
    counts = {"received": 0, "valid": 0, "invalid": 0, "duplicates": 0}
    seen: set[str] = set()
    consumer.subscribe(args.topic)
    last = time.monotonic()
    try:
        while args.max_messages is None or counts["received"] < args.max_messages:
            if time.monotonic() - last > args.idle_timeout:
                break
            messages = consumer.consume(num_messages=100, timeout=0.5)
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    print(json.dumps({"error": str(error)}), file=err, flush=True)
                    continue
                last = time.monotonic()
                counts["received"] += 1
                event, problems = decode(message, schemas)
                if problems:
                    counts["invalid"] += 1
                    print(json.dumps({**event, "errors": problems}, ensure_ascii=False), file=err)
                elif event["id"] in seen:
                    counts["duplicates"] += 1
                else:
                    seen.add(str(event["id"]))
                    counts["valid"] += 1
                    print(json.dumps(event, ensure_ascii=False), file=out, flush=True)
            if messages:
                consumer.commit(asynchronous=False)
    finally:
        consumer.close()
        print(json.dumps({"summary": counts}), file=err, flush=True)
    return 1 if counts["invalid"] else 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True, help="partner.<your name>.<app>")
    parser.add_argument("--topic", action="append", required=True)
    parser.add_argument("--schema-base-url", required=True, help="ce_dataschema is appended")
    parser.add_argument(
        "--security-protocol",
        default="SASL_SSL",
        choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"],
    )
    parser.add_argument("--sasl-username")
    parser.add_argument("--sasl-password-file")
    parser.add_argument("--ssl-cafile")
    parser.add_argument("--max-messages", type=int)
    parser.add_argument("--idle-timeout", type=float, default=30.0, help="seconds")
    args = parser.parse_args(argv)
    if args.security_protocol.startswith("SASL") and not (
        args.sasl_username and args.sasl_password_file
    ):
        parser.error("SASL needs --sasl-username and --sasl-password-file")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
