"""Poison on every consumed topic ends in the consumer's dead-letter topic; consumers go on.

Each service's consumer workers run as `jingmin worker` runs them (their own `run(ctx)`), on
fresh databases, against a real Kafka-protocol broker. For every topic a worker consumes, four
poisoned records go in, then a message its producer really published (taken from the seeded
platform's outbox), all under one key, so one partition holds them in that order:

- malformed bytes, with no CloudEvents headers at all;
- JSON of a known event type that breaks the type's schema;
- an event type nobody publishes;
- an oversized value (600 KB);

Each poisoned record must arrive in the worker's dead-letter topic with a `dlq_reason`, and the
valid message after them must still take effect in the worker's database.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from eventkit import db, devstack, kafka, topics
from eventkit.service import ServiceSpec, load_services
from eventkit.settings import KernelSettings
from eventkit.testing import wait_for
from eventkit.worker import WorkerContext, load_loop
from world import World

pytestmark = pytest.mark.integration

INTAKE_TOPIC = "intake.case.events.v1"
CALLBACK_TOPIC = "visits.callback.events.v1"
VISIT_TOPIC = "visits.visit.events.v1"
COMPLAINT_TOPIC = "complaints.complaint.events.v1"
SUPERVISION_TOPIC = "complaints.supervision.events.v1"
UNIT_TOPIC = "intake.unit.events.v1"

# Every worker of every installed service, by what it does. A worker missing here fails
# test_every_worker_is_classified: a new consumer must join the table below.
CONSUMERS: dict[str, tuple[str, ...]] = {
    "jingmin_intake.application.visits_consumer:run": (VISIT_TOPIC,),
    "jingmin_visits.application.intake_consumer:run": (INTAKE_TOPIC,),
    "jingmin_visits.application.complaints_consumer:run": (COMPLAINT_TOPIC, SUPERVISION_TOPIC),
    "jingmin_complaints.application.consumers:run": (INTAKE_TOPIC, CALLBACK_TOPIC),
    "jingmin_complaints.adapters.unit_names:run": (UNIT_TOPIC,),
}
NOT_CONSUMERS = frozenset(
    {
        "jingmin_intake.application.sweeper:run",
        "jingmin_visits.application.expiry:run",
        "jingmin_visits.application.surveys:run",
        "jingmin_complaints.application.sweeper:run",
    }
)
# Consumers this test does not run, and why (each is its owner's to cover).
OTHER_CONSUMERS: dict[str, str] = {
    "jingmin_metrics.stream.runner:run": "faust stream processors in their own processes; "
    "their poison handling is tested in services/metrics",
    "jingmin_metrics.adapters.daily_publisher:run": "reads the figures in metrics' own database, "
    "which only the metrics processors write",
    "jingmin_metrics.adapters.unit_names:run": "follows intake's unit register into metrics' "
    "own database (METRICS_DATABASE_DSN, not the worker's pool); its poison is tested at its "
    "consumer in services/metrics/tests/integration/test_unit_names.py",
}
POISONS = ("malformed bytes", "wrong schema", "unknown type", "oversized")
# Poison that a consumer applies instead of refusing; each one is a reported defect.
KNOWN_GAPS: dict[tuple[str, str, str], str] = {}


Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Valid:
    """A message the producing service really published, and how to see it applied."""

    key: str
    records: list[tuple[bytes, Headers]]
    applied: Callable[[asyncpg.Pool], Awaitable[bool]]


Records = list[tuple[bytes, list[tuple[str, bytes]]]]


async def _outbox(pool: asyncpg.Pool, topic: str, key: str, types: tuple[str, ...]) -> Records:
    rows = await pool.fetch(
        """SELECT payload::text AS p, headers::text AS h FROM outbox
           WHERE topic = $1 AND aggregate_id = $2 AND type = ANY($3::text[]) ORDER BY id""",
        topic,
        key,
        [f"jingmin.{t}.v1" for t in types],
    )
    assert rows, f"the seeded platform published nothing of {types} on {topic} for {key}"
    return [
        (kafka.json_bytes(json.loads(r["p"])), kafka.record_headers(json.loads(r["h"])))
        for r in rows
    ]


async def _exists(pool: asyncpg.Pool, sql: str, *args: Any) -> bool:
    return bool(await pool.fetchval(sql, *args))


async def valid_messages(w: World) -> dict[tuple[str, str], Valid]:
    """For each (worker, topic): real published records, and the effect to look for."""
    intake, visits, complaints = w.pools["intake"], w.pools["visits"], w.pools["complaints"]
    case, cb = w.ids["case_id"], w.ids["callback_id"]
    complaint_case, complaint = w.ids["complaint_case_id"], w.ids["complaint_id"]
    order = w.ids["recovery_order_id"]
    visit, unit = w.ids["visit_id"], w.ids["unit_code"]
    issue_case = await visits.fetchval(
        "SELECT data->>'issue_id' FROM events WHERE stream_id = $1 AND type = 'IssueRaised'", visit
    )
    return {
        ("jingmin_visits.application.intake_consumer:run", INTAKE_TOPIC): Valid(
            case,
            await _outbox(
                intake, INTAKE_TOPIC, case, ("intake.CaseReceived", "intake.CaseResolved")
            ),
            lambda pool: _exists(pool, "SELECT 1 FROM callbacks WHERE callback_id = $1", cb),
        ),
        ("jingmin_complaints.application.consumers:run", INTAKE_TOPIC): Valid(
            complaint_case,
            await _outbox(intake, INTAKE_TOPIC, complaint_case, ("intake.CaseReceived",)),
            lambda pool: _exists(
                pool, "SELECT 1 FROM complaints WHERE complaint_id = $1", complaint_case
            ),
        ),
        ("jingmin_complaints.application.consumers:run", CALLBACK_TOPIC): Valid(
            cb,
            await _outbox(
                visits, CALLBACK_TOPIC, cb, ("visits.CallbackScheduled", "visits.CallbackAnswered")
            ),
            lambda pool: _exists(
                pool, "SELECT 1 FROM supervision_orders WHERE callback_id = $1", cb
            ),
        ),
        ("jingmin_complaints.adapters.unit_names:run", UNIT_TOPIC): Valid(
            unit,
            await _outbox(intake, UNIT_TOPIC, unit, ("intake.UnitRegistered",)),
            lambda pool: _exists(
                pool, "SELECT 1 FROM unit_names WHERE code = $1 AND name IS NOT NULL", unit
            ),
        ),
        ("jingmin_intake.application.visits_consumer:run", VISIT_TOPIC): Valid(
            visit,
            await _outbox(visits, VISIT_TOPIC, visit, ("visits.IssueRaised",)),
            lambda pool: _exists(pool, "SELECT 1 FROM cases WHERE case_id = $1", issue_case),
        ),
        ("jingmin_visits.application.complaints_consumer:run", COMPLAINT_TOPIC): Valid(
            complaint,
            await _outbox(
                complaints, COMPLAINT_TOPIC, complaint, ("complaints.ComplaintConcluded",)
            ),
            lambda pool: _exists(pool, "SELECT 1 FROM callbacks WHERE case_id = $1", complaint),
        ),
        ("jingmin_visits.application.complaints_consumer:run", SUPERVISION_TOPIC): Valid(
            order,
            await _outbox(
                complaints, SUPERVISION_TOPIC, order, ("supervision.RecoveryFollowUpRequested",)
            ),
            lambda pool: _exists(
                pool,
                "SELECT 1 FROM callbacks WHERE callback_id = $1",
                f"cb-{case}-service_recovery",
            ),
        ),
    }


def poisons(topic: str, valid: Valid, marker: str) -> list[tuple[str, bytes, Headers]]:
    """The four poisoned records for `topic`, built on a real record's headers."""
    value, headers = valid.records[-1]
    data = json.loads(value)
    ce_type = dict(headers)["ce_type"].decode()
    service = ce_type.split(".")[1]

    def with_headers(**changes: str) -> list[tuple[str, bytes]]:
        kept = [(k, v) for k, v in headers if k[3:] not in changes and k != "ce_id"]
        extra = {"id": str(uuid.uuid4()), **changes}
        ce = [(f"ce_{k}", v.encode()) for k, v in extra.items()]
        return [*kept, *ce, ("poison", marker.encode())]

    broken = {k: (12345 if isinstance(v, str) else "not-a-number") for k, v in data.items()}
    return [
        ("malformed bytes", b"\xff\xfe\x00 not json {", [("poison", marker.encode())]),
        ("wrong schema", kafka.json_bytes(broken), with_headers()),
        (
            "unknown type",
            kafka.json_bytes(data),
            with_headers(type=f"jingmin.{service}.NoSuchEventEver.v1"),
        ),
        ("oversized", kafka.json_bytes({**data, "padding": "x" * 600_000}), with_headers()),
    ]


@dataclass
class Outcome:
    dead: dict[tuple[str, str, str], dict[str, bytes]] = field(default_factory=dict)
    applied: dict[tuple[str, str], bool] = field(default_factory=dict)


def _worker_specs() -> dict[str, ServiceSpec]:
    return {w: spec for spec in load_services().values() for w in spec.workers}


async def _dead_letters(bootstrap: str, topic: str, marker: str) -> list[dict[str, bytes]]:
    """Headers of the records in `topic` that carry this run's marker."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await topics.rewind(consumer, assigned)
        found = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in assigned])

        while await behind():
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    headers = dict(r.headers or [])
                    if headers.get("poison") == marker.encode():
                        found.append(headers)
        return found
    finally:
        await consumer.stop()


@pytest.fixture(scope="module")
async def outcome(
    the_world: World,
    kafka_bootstrap: str,
    pg_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Outcome]:
    import base64
    import os

    settings = KernelSettings(
        jingmin_home=tmp_path_factory.mktemp("dlq"),
        master_key=base64.b64encode(os.urandom(32)).decode(),
        kafka_bootstrap_servers=kafka_bootstrap,
    )
    for spec in load_services().values():
        await topics.ensure_topics(kafka_bootstrap, devstack.service_topics(spec))
    specs = _worker_specs()
    valid = await valid_messages(the_world)
    marker = uuid.uuid4().hex
    stop = asyncio.Event()
    made: list[str] = []
    pools: dict[str, asyncpg.Pool] = {}
    tasks: list[asyncio.Task[None]] = []
    result = Outcome()
    try:
        for worker in CONSUMERS:
            if worker not in specs:
                continue
            spec = specs[worker]
            name = f"test_{uuid.uuid4().hex[:12]}"
            await db.ensure_database(pg_server_url, name)
            made.append(name)
            dsn = db.database_dsn(pg_server_url, name)
            await asyncio.to_thread(db.migrate, dsn, spec.migrations)
            pools[worker] = await db.create_pool(dsn, min_size=1, max_size=5)
            ctx = WorkerContext(settings, spec, pools[worker], stop)
            tasks.append(asyncio.create_task(load_loop(worker)(ctx), name=worker))
        producer = kafka.producer(settings, max_request_size=2_000_000)
        await producer.start()
        try:
            for (worker, topic), message in valid.items():
                if worker not in pools:
                    continue
                for _what, value, headers in poisons(topic, message, f"{marker}:{worker}:{topic}"):
                    await producer.send_and_wait(
                        topic, value, key=message.key.encode(), headers=headers
                    )
                for value, headers in message.records:
                    await producer.send_and_wait(
                        topic, value, key=message.key.encode(), headers=headers
                    )
        finally:
            await producer.stop()
        for (worker, topic), message in valid.items():
            if worker not in pools:
                continue
            result.applied[(worker, topic)] = await _applied(message, pools[worker])
        # Every record is handled in order: once the valid one is applied, the poison before it
        # has been dead-lettered (or let through).
        for worker, topic in valid:
            owner = specs.get(worker)
            if owner is None or owner.dead_letter_topic is None:
                continue
            letters = await _dead_letters(
                kafka_bootstrap, owner.dead_letter_topic, f"{marker}:{worker}:{topic}"
            )
            for letter in letters:
                result.dead[(worker, topic, _poison_kind(letter))] = letter
        yield result
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for pool in pools.values():
            await pool.close()
        for name in made:
            await db.drop_database(pg_server_url, name)


async def _applied(message: Valid, pool: asyncpg.Pool) -> bool:
    async def check() -> bool:
        return await message.applied(pool)

    try:
        await wait_for(check, timeout=60, interval=0.5)  # type: ignore[arg-type]
    except TimeoutError:
        return False
    return True


def _poison_kind(headers: dict[str, bytes]) -> str:
    ce_type = headers.get("ce_type", b"").decode()
    if "ce_type" not in headers:
        return "malformed bytes"
    if "NoSuchEventEver" in ce_type:
        return "unknown type"
    reason = headers.get("dlq_reason", b"").decode()
    return "oversized" if "padding" in reason else "wrong schema"


def _short(worker: str) -> str:
    """jingmin_visits.application.intake_consumer:run -> visits-intake_consumer"""
    module = worker.split(":")[0]
    return f"{module.split('.')[0].removeprefix('jingmin_')}-{module.split('.')[-1]}"


def test_every_worker_is_classified() -> None:
    workers = set(_worker_specs())
    unknown = workers - set(CONSUMERS) - NOT_CONSUMERS - set(OTHER_CONSUMERS)
    assert not unknown, f"classify these workers in CONSUMERS or NOT_CONSUMERS: {sorted(unknown)}"


CASES = [
    pytest.param(
        worker,
        topic,
        poison,
        marks=[pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[(worker, topic, poison)])]
        if (worker, topic, poison) in KNOWN_GAPS
        else [],
        id=f"{_short(worker)}-{topic}-{poison.replace(' ', '_')}",
    )
    for worker, topics_ in CONSUMERS.items()
    for topic in topics_
    for poison in POISONS
]


@pytest.mark.parametrize(("worker", "topic", "poison"), CASES)
def test_poison_is_dead_lettered(outcome: Outcome, worker: str, topic: str, poison: str) -> None:
    if worker not in _worker_specs():
        pytest.skip(f"{worker} is not installed")
    headers = outcome.dead.get((worker, topic, poison))
    assert headers is not None, f"{poison} on {topic} was not dead-lettered by {worker}"
    assert headers.get("dlq_reason"), headers
    assert headers.get("dlq_topic") == topic.encode()


@pytest.mark.parametrize(("worker", "topic"), [(w, t) for w, ts in CONSUMERS.items() for t in ts])
def test_a_valid_message_after_the_poison_is_applied(
    outcome: Outcome, worker: str, topic: str
) -> None:
    if worker not in _worker_specs():
        pytest.skip(f"{worker} is not installed")
    assert outcome.applied.get((worker, topic)), f"{worker} did not apply the valid {topic} message"
