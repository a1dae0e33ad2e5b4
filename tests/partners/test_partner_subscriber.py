"""The partner subscriber example against a running platform: it receives and validates every
event, and no partner-visible message carries a simulated person's data.

The platform part is real: the intake API (in process, over ASGI) with its PostgreSQL
database, the outbox relay publishing to a real Kafka-protocol broker (the `kafka_bootstrap`
fixture: Tansu, or KAFKA_BOOTSTRAP_SERVERS). The subscriber runs as its own process, as a
partner would run it, in a consumer group named the way partner ACLs require.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml
from eventkit import kafka, topics
from eventkit.auth import issue_token
from eventkit.devstack import service_topics
from eventkit.relay import OutboxRelay
from eventkit.service import TopicSpec
from eventkit.settings import KernelSettings
from eventkit.testing import DatabaseFactory, wait_for
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SUBSCRIBER = ROOT / "examples" / "partner_subscriber" / "subscriber.py"
CONTRACTS = ROOT / "contracts"
BUREAU = "330602"
STATION = BUREAU + "001"
OFFICERS = ("p4711", "p4712")

# Simulated people: everything here is personal data (or free text that may hold it) and
# must never reach a topic in clear text.
PEOPLE: list[dict[str, Any]] = [
    {
        "person": {
            "name": "欧阳秀英",
            "phone": "13912345671",
            "id_number": "33060219800101123X",
            "address": "越城区解放北路188号3单元",
        },
        "demand": "楼下邻居深夜持续装修噪音扰民",
        "hoped_outcome": "请派人劝说邻居晚上十点后停工",
        "kind": "help",
        "channel": "call_110",
    },
    {
        "person": {
            "name": "司马建国",
            "phone": "13812349876",
            "id_number": "330602197502023456",
            "address": "柯桥区笛扬路66号",
        },
        "demand": "小区门口占道经营摊贩堵塞消防通道",
        "hoped_outcome": "希望清理占道摊位恢复通行",
        "kind": "opinion",
        "channel": "online",
    },
    {
        "person": {
            "name": "诸葛丽娟",
            "phone": "13700001111",
            "address": "上虞区百官街道人民路9号",
        },
        "demand": "咨询新生儿落户需要带哪些材料",
        "hoped_outcome": "一次说清所需材料",
        "kind": "consultation",
        "channel": "window",
    },
]
TRANSFER: dict[str, Any] = {
    "target_type": "external",
    "target": "12345",
    "explanation": "已告知其拨打12345热线由城管部门处理，联系人王科长",
    "person_informed": True,
}
REPLY = "经核实已联系物业协调，邻居承诺晚十点后停工，联系电话0575-88888888"


def _secrets() -> list[str]:
    """Every personal or free-text string the simulated traffic put into the platform."""
    values: list[str] = [str(TRANSFER["explanation"]), REPLY]
    for p in PEOPLE:
        values += [v for v in p["person"].values() if v]
        values += [p["demand"], p["hoped_outcome"]]
    return values


def _partner_topics(produced: set[str]) -> list[str]:
    """Partner topics (deploy/topics.yaml) that intake actually produces today."""
    plan = yaml.safe_load((ROOT / "deploy" / "topics.yaml").read_text())
    return [t["name"] for t in plan["topics"] if t["kind"] == "partner" and t["name"] in produced]


@pytest.fixture
async def platform(
    fresh_database: DatabaseFactory, tmp_path: Path, kafka_bootstrap: str
) -> AsyncIterator[dict[str, Any]]:
    from jingmin_intake.entrypoints.app import create_app
    from jingmin_intake.service import SERVICE

    settings = KernelSettings(
        jingmin_home=tmp_path,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        kafka_bootstrap_servers=kafka_bootstrap,
    )
    await topics.ensure_topics(kafka_bootstrap, service_topics(SERVICE))
    dsn = await fresh_database([SERVICE.migrations])
    app = create_app(settings, dsn=dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    assert pool is not None
    relay = OutboxRelay(
        pool, lambda: kafka.producer(settings, kafka_bootstrap), service="intake", poll_interval=0.1
    )
    stop = asyncio.Event()
    relaying = asyncio.create_task(relay.run(stop))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as c:
                yield {
                    "app": app,
                    "client": c,
                    "settings": settings,
                    "pool": pool,
                    "bootstrap": kafka_bootstrap,
                    "topics": {t.name for t in SERVICE.topics},
                }
    finally:
        stop.set()
        await asyncio.wait_for(relaying, 30)
        await pool.close()


async def _simulate(platform: dict[str, Any]) -> int:
    """Each person's case through the HTTP API; returns how many events were stored."""
    token = issue_token(
        platform["settings"], subject="op-7", roles=["intake_operator"], scopes=[BUREAU]
    )
    client: httpx.AsyncClient = platform["client"]
    headers = {"Authorization": f"Bearer {token}"}

    async def post(path: str, body: dict[str, Any], expect: int = 200) -> dict[str, Any]:
        r = await client.post(path, json=body, headers=headers)
        assert r.status_code == expect, r.text
        result: dict[str, Any] = r.json()
        return result

    for i, p in enumerate(PEOPLE):
        body = {"bureau": BUREAU, "station": STATION, "area_type": "urban", **p}
        case = await post("/v1/cases", body, expect=201)
        cid = case["case_id"] if "case_id" in case else case["id"]
        first = {"officer_id": OFFICERS[0], "unit": STATION, "in_remit": i != 1}
        await post(f"/v1/cases/{cid}/first-contact", first)
        if i == 0:
            await post(
                f"/v1/cases/{cid}/dispatch",
                {
                    "unit": STATION,
                    "officer_ids": list(OFFICERS),
                    "reason": "群众求助",
                    "purpose": "到场劝说",
                },
            )
            await post(f"/v1/cases/{cid}/arrival", {"officer_id": OFFICERS[1]})
            await post(f"/v1/cases/{cid}/resolution", {"reply": REPLY})
            await post(f"/v1/cases/{cid}/close", {})
        elif i == 1:
            # Not police business: transferred to the 12345 hotline (a partner topic's case).
            await post(f"/v1/cases/{cid}/transfer", TRANSFER)
        else:
            await post(f"/v1/cases/{cid}/resolution", {"reply": "已当场告知所需材料清单"})
    count: int = await platform["pool"].fetchval("SELECT count(*) FROM outbox")
    return count


async def _published(platform: dict[str, Any]) -> bool:
    pending = await platform["pool"].fetchval(
        "SELECT count(*) FROM outbox WHERE published_at IS NULL"
    )
    return bool(pending == 0)


def _raw_records(bootstrap: str, topic: str) -> list[Any]:
    """Every record of a topic as bytes on the wire, read without a group."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1000
    )
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        records: list[Any] = []
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def _run_subscriber(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SUBSCRIBER), "--schemas", str(CONTRACTS), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def test_subscriber_receives_and_validates_every_event_and_no_personal_data(
    platform: dict[str, Any],
) -> None:
    stored = await _simulate(platform)

    async def published() -> bool:
        return await _published(platform)

    await wait_for(published, timeout=30, message="relay did not publish")
    # What a partner's ACLs reach: the partner topics only (never the internal topics, which
    # other tests on this session's broker also fill with poison on purpose).
    wanted = _partner_topics(platform["topics"])
    assert wanted == ["intake.hotline12345.public.v1"]

    # The whole topic, since other tests on this broker may have written to it too.
    expected = sum(len(_raw_records(platform["bootstrap"], t)) for t in wanted)
    shared = await platform["pool"].fetchval(
        "SELECT count(*) FROM outbox WHERE topic = ANY($1::text[])", wanted
    )
    assert stored > shared >= 1
    assert expected >= shared
    group = f"partner.example-{uuid.uuid4().hex[:8]}.subscriber"
    args = [arg for t in wanted for arg in ("--topic", t)]
    result = await asyncio.to_thread(
        _run_subscriber,
        "--bootstrap",
        platform["bootstrap"],
        "--group",
        group,
        "--max-messages",
        str(expected),
        "--idle-timeout",
        "60",
        *args,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    events = [json.loads(line) for line in result.stdout.splitlines()]
    summary = json.loads(result.stderr.strip().splitlines()[-1])["summary"]
    assert summary == {"received": expected, "valid": expected, "invalid": 0, "duplicates": 0}
    assert len(events) == expected == len({e["id"] for e in events})

    ours = [e for e in events if e["bureau"] == BUREAU and e["data"]["station"] == STATION]
    assert {e["type"] for e in ours} == {"jingmin.intake.HotlineCaseStatusChanged.v1"}
    transferred = [e for e in ours if e["data"]["status"] == "transferred"]
    assert [e["data"]["direction"] for e in transferred] == ["to_hotline"]

    # The acceptance check: scan every byte a partner can see (key, headers, body) for the
    # simulated people's data, and the subscriber's own output too.
    secrets = _secrets()
    for topic in wanted:
        for record in _raw_records(platform["bootstrap"], topic):
            wire = (record.key or b"") + (record.value or b"")
            wire += b"".join(k.encode() + (v or b"") for k, v in record.headers)
            text = wire.decode("utf-8", errors="replace")
            leaked = [s for s in secrets if s in text]
            assert not leaked, f"{topic}@{record.offset} carries {leaked}"
            # Partner topics also carry no officer identities and no person reference.
            assert not [o for o in OFFICERS if o in text], f"{topic} names an officer"
            assert "subject_id" not in json.loads(record.value)
    assert not [s for s in secrets if s in result.stdout]
    for event in ours:
        assert not {"name", "phone", "id_number", "address", "demand", "reply"} & set(event["data"])


CONFLUENT_SUBSCRIBER = ROOT / "examples" / "partner_subscriber" / "confluent_subscriber.py"
NODE_SUBSCRIBER = ROOT / "examples" / "partner_subscriber" / "node"


async def _subscribe_with_fetched_schemas(
    platform: dict[str, Any], command: list[str]
) -> list[dict[str, Any]]:
    """Cases through the API, then `command` (a subscriber taking the confluent example's
    options) on the partner topics, schemas fetched at `<base URL><ce_dataschema>` from the
    intake API served on a real port (GET /schemas/..., what the public Ingress serves).
    Every record must be received and valid; returns the events it printed."""
    import uvicorn
    from eventkit.devstack import free_port

    await _simulate(platform)

    async def published() -> bool:
        return await _published(platform)

    await wait_for(published, timeout=30, message="relay did not publish")
    wanted = _partner_topics(platform["topics"])
    expected = sum(len(_raw_records(platform["bootstrap"], t)) for t in wanted)
    assert expected >= 1
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(platform["app"], host="127.0.0.1", port=port, lifespan="off", ws="none")
    )
    serving = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started, timeout=20)
        result = await asyncio.to_thread(
            subprocess.run,
            [
                *command,
                "--bootstrap",
                platform["bootstrap"],
                "--security-protocol",
                "PLAINTEXT",
                "--schema-base-url",
                f"http://127.0.0.1:{port}/schemas/",
                "--group",
                f"partner.example-{uuid.uuid4().hex[:8]}.subscriber",
                "--max-messages",
                str(expected),
                "--idle-timeout",
                "60",
                *[arg for t in wanted for arg in ("--topic", t)],
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 20)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stderr.strip().splitlines()[-1])["summary"]
    assert summary == {"received": expected, "valid": expected, "invalid": 0, "duplicates": 0}
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == expected == len({e["id"] for e in events})
    for event in events:
        assert event["dataschema"] == f"urn:jingmin:schema:{event['type']}"
    ours = [e for e in events if e["bureau"] == BUREAU and e["data"]["station"] == STATION]
    assert {e["type"] for e in ours} == {"jingmin.intake.HotlineCaseStatusChanged.v1"}
    return events


async def test_confluent_kafka_subscriber_validates_against_the_schema_its_dataschema_names(
    platform: dict[str, Any],
) -> None:
    """The librdkafka client most agencies use, on the dev broker: each record decoded with
    the CloudEvents SDK and validated against the schema fetched from its ce_dataschema."""
    await _subscribe_with_fetched_schemas(platform, [sys.executable, str(CONFLUENT_SUBSCRIBER)])


async def test_node_subscriber_validates_against_the_schema_its_dataschema_names(
    platform: dict[str, Any],
) -> None:
    """The same in Node.js (kafkajs, the CloudEvents SDK for JavaScript, Ajv); its packages
    come from `npm ci --prefix examples/partner_subscriber/node` (make setup, .ci/run)."""
    import shutil

    node = shutil.which("node")
    if node is None or not (NODE_SUBSCRIBER / "node_modules" / "kafkajs").is_dir():
        pytest.fail("needs node and `npm ci --prefix examples/partner_subscriber/node`")
    await _subscribe_with_fetched_schemas(platform, [node, str(NODE_SUBSCRIBER / "subscriber.mjs")])


def test_subscriber_refuses_an_event_that_breaks_its_schema(kafka_bootstrap: str) -> None:
    topic = f"partner-example-{uuid.uuid4().hex[:8]}"
    asyncio.run(topics.ensure_topics(kafka_bootstrap, [TopicSpec(topic, partitions=1)]))
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    headers = [
        ("ce_id", uuid.uuid4().hex.encode()),
        ("ce_source", b"/jingmin/intake"),
        ("ce_type", b"jingmin.intake.CaseTransferred.v1"),
        ("ce_specversion", b"1.0"),
        ("ce_time", b"2024-05-01T08:00:00+00:00"),
        ("ce_subject", b"0" * 32),
        ("content-type", b"application/json"),
    ]
    good = {
        "case_id": "0" * 32,
        "bureau": BUREAU,
        "station": STATION,
        "occurred_at": "2024-05-01T08:00:00+00:00",
        "target_type": "external",
        "target": "12345",
        "person_informed": True,
    }
    # A producer that leaked a name into the body: `additionalProperties: false` catches it.
    bad = {**good, "name": "欧阳秀英"}
    producer.send(topic, key=b"0" * 32, value=json.dumps(good).encode(), headers=headers)
    headers2 = [(k, uuid.uuid4().hex.encode()) if k == "ce_id" else (k, v) for k, v in headers]
    producer.send(topic, key=b"0" * 32, value=json.dumps(bad).encode(), headers=headers2)
    producer.flush()
    producer.close()

    result = _run_subscriber(
        "--bootstrap",
        kafka_bootstrap,
        "--topic",
        topic,
        "--max-messages",
        "2",
        "--idle-timeout",
        "20",
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert len(result.stdout.splitlines()) == 1  # the good one
    rejected = json.loads(result.stderr.splitlines()[0])
    assert any("name" in e and "additional" in e.lower() for e in rejected["errors"])
    summary = json.loads(result.stderr.strip().splitlines()[-1])["summary"]
    assert summary["valid"] == 1 and summary["invalid"] == 1
