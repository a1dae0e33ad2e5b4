"""Issues raised during visits become intake cases: one per issue, however often delivered.

Messages are built to contracts/visits/IssueRaised.v1.json (and checked against it), handed
to the intake consumer as Kafka records (and, in one test, through a real broker), and the
resulting cases are read back through the intake HTTP API as an officer would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from eventkit import kafka
from eventkit.consumer import IdempotentConsumer, make_consumer
from eventkit.contracts import SchemaRegistry, dataschema_urn
from eventkit.envelope import Envelope
from eventkit.personal import Vault, subject_ref
from eventkit.service import TopicSpec
from eventkit.settings import KernelSettings
from eventkit.testing import wait_for
from eventkit.topics import ensure_topics
from eventkit.worker import load_loop
from jingmin_intake.application.visits_consumer import (
    CONSUMER_NAME,
    build_consumer,
    consume,
    issue_validator,
)
from jingmin_intake.integration.inbound import ISSUE_RAISED, VISITS_TOPIC
from jingmin_intake.service import SERVICE

if TYPE_CHECKING:
    from conftest import Api, Stored

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[4]
BUREAU = "330602"
STATION = BUREAU + "001"
Record = ConsumerRecord[bytes, bytes]


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.load(REPO / "contracts")


@dataclass
class FakeProducer:
    """Stands in for Kafka where only dead letters would be produced; keeps what was sent."""

    sent: list[tuple[str, bytes | None, list[tuple[str, bytes]]]] = field(default_factory=list)

    async def send(
        self, topic: str, value: bytes | None = None, key: Any = None, headers: Any = None
    ) -> Any:
        self.sent.append((topic, value, list(headers or [])))

        async def acked() -> None:
            return None

        return acked()


@pytest.fixture
def dead_letters() -> FakeProducer:
    return FakeProducer()


ConsumerFactory = Callable[..., IdempotentConsumer]


@pytest.fixture
def consumer_for(
    db: asyncpg.Pool, settings: KernelSettings, dead_letters: FakeProducer, registry: SchemaRegistry
) -> ConsumerFactory:
    """The intake consumer on the test database; name= makes a second, fresh consumer."""

    def make(**kw: Any) -> IdempotentConsumer:
        options: dict[str, Any] = {"retries": 2, "retry_delay": 0.01, **kw}
        return build_consumer(
            db,
            dead_letters,  # type: ignore[arg-type]
            settings,
            validate=issue_validator(registry),
            **options,
        )

    return make


class Visits:
    """Builds visits' CloudEvents as the visits service publishes them."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry
        self.offset = 0

    def issue(self, source_id: str | None = None, **overrides: Any) -> Envelope:
        source_id = source_id or uuid.uuid4().hex
        data: dict[str, Any] = {
            "issue_id": uuid.uuid4().hex,
            "source_type": "visit",
            "source_id": source_id,
            "bureau": BUREAU,
            "station": STATION,
            "occurred_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "kind": "opinion",
            "category": "traffic.parking",
            "branch": "traffic",
            "area_type": "rural",
            "raised_by": "p2001",
            "programme": "aimin_visit",
        }
        data.update(overrides)
        data = {k: v for k, v in data.items() if v is not None}
        return self.envelope(ISSUE_RAISED, source_id, data)

    def envelope(self, type_: str, source_id: str, data: dict[str, Any]) -> Envelope:
        return Envelope(
            id=str(uuid.uuid4()),
            source="/jingmin/visits",
            type=type_,
            subject=source_id,
            time=datetime.now(UTC),
            data=data,
            dataschema=dataschema_urn(type_),
            bureau=BUREAU,
            streamid=source_id,
            streamversion=2,
            correlationid=f"corr-{source_id[:8]}",
        )

    def copy(self, env: Envelope) -> Envelope:
        """The same issue published again under a new ce_id (a re-emission, not a replay)."""
        return dataclasses.replace(env, id=str(uuid.uuid4()))

    def record(self, env: Envelope, topic: str = VISITS_TOPIC) -> Record:
        self.offset += 1
        return ConsumerRecord(
            topic=topic,
            partition=0,
            offset=self.offset,
            timestamp=0,
            timestamp_type=0,
            key=env.key.encode(),
            value=env.kafka_value(),
            checksum=None,
            serialized_key_size=len(env.key),
            serialized_value_size=len(env.kafka_value()),
            headers=env.kafka_headers(),
        )


@pytest.fixture
def visits(registry: SchemaRegistry) -> Visits:
    return Visits(registry)


async def deliver(consumer: IdempotentConsumer, visits: Visits, envs: list[Envelope]) -> list[str]:
    return [await consumer.handle(visits.record(e)) for e in envs]


async def cases(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch("SELECT * FROM cases ORDER BY case_id")]


async def test_a_visit_raising_two_issues_opens_two_field_cases_once_even_delivered_twice(
    consumer_for: ConsumerFactory,
    visits: Visits,
    registry: SchemaRegistry,
    api: Api,
    stored: Stored,
) -> None:
    visit_id = uuid.uuid4().hex
    first = visits.issue(visit_id)
    second = visits.issue(visit_id, kind="help", category=None, branch=None, area_type="urban")
    for env in (first, second):  # the messages are what the contract says
        registry.validate(env.type, env.data)
    consumer = consumer_for()

    outcomes = await deliver(consumer, visits, [first, second, first, second])

    assert outcomes == ["applied", "applied", "duplicate", "duplicate"]
    counts = await stored.counts()
    assert (counts["events"], counts["outbox"], counts["cases"]) == (2, 2, 2)
    for env in (first, second):
        issue = env.data
        case_id = issue["issue_id"]
        detail = await api.get(case_id)
        case = detail["case"]
        assert (case["channel"], case["kind"], case["status"]) == (
            "field",
            issue["kind"],
            "received",
        )
        assert (case["bureau"], case["station"], case["area_type"]) == (
            BUREAU,
            STATION,
            issue["area_type"],
        )
        assert case["branch"] == issue.get("branch", "other")
        link = f"visits:visit:{visit_id}#{case_id}"
        assert case["source_ref"] == link
        assert datetime.fromisoformat(case["received_at"]) == datetime.fromisoformat(
            issue["occurred_at"]
        )
        [receipt] = detail["history"]
        assert receipt["type"] == "CaseReceived"
        assert receipt["actor"] == "system:visits-consumer"
        data = receipt["data"]
        assert data["demand"] == f"走访中群众反映的问题（来源：visit {visit_id}）"
        assert (data["source_ref"], data["received_by"], data["programme"]) == (
            link,
            "p2001",
            "aimin_visit",
        )
        assert data.get("category") == issue.get("category")
    # The opinion gets the general reply promise, counted from when it was raised.
    opinion = await api.get(first.data["issue_id"])
    due = datetime.fromisoformat(opinion["deadlines"]["resolution"]["due_at"])
    assert due == datetime.fromisoformat(first.data["occurred_at"]) + timedelta(days=7)

    # Both cases of the visit, found by their link.
    page = await api.list(source_ref=f"visits:visit:{visit_id}#")
    assert {c["case_id"] for c in page["items"]} == {
        first.data["issue_id"],
        second.data["issue_id"],
    }

    # What intake publishes is its own contract: valid, linked, and without the demand text.
    outbox = await stored.outbox()
    assert [m["type"] for m in outbox] == ["jingmin.intake.CaseReceived.v1"] * 2
    for message in outbox:
        registry.validate(message["type"], message["payload"])
        assert message["payload"]["channel"] == "field"
        assert message["payload"]["source_ref"].startswith(f"visits:visit:{visit_id}#")
        assert "走访" not in message["raw"] and "demand" not in message["payload"]
        # The cause stays traceable: the visits message and its correlation id.
        assert message["headers"]["ce_correlationid"] == f"corr-{visit_id[:8]}"
    causes = await stored.pool.fetch("SELECT metadata->>'causation_id' AS c FROM events")
    assert {r["c"] for r in causes} == {first.id, second.id}


async def test_a_replay_a_second_consumer_and_a_re_emitted_copy_open_nothing_new(
    consumer_for: ConsumerFactory, visits: Visits, stored: Stored
) -> None:
    envs = [visits.issue(), visits.issue(source_type="engagement", programme="open_day")]
    await deliver(consumer_for(), visits, envs)
    before = await stored.counts()

    # `jingmin replay` of the visits topic: same ce_ids, same consumer.
    replayed = await deliver(consumer_for(), visits, envs)
    # A second consumer (a new group, no processed rows) reading the whole topic.
    fresh = await deliver(consumer_for(name="intake.cases.rebuilt"), visits, envs)
    # Visits publishing the same issue again under a new ce_id.
    copies = await deliver(consumer_for(), visits, [visits.copy(e) for e in envs])

    assert set(replayed) == {"duplicate"}
    assert set(fresh) == {"applied"}  # applied, and found the cases already open
    assert set(copies) == {"applied"}
    assert await stored.counts() == before
    assert before["cases"] == 2
    engagement = await stored.pool.fetchval(
        "SELECT source_ref FROM cases WHERE case_id = $1", envs[1].data["issue_id"]
    )
    assert engagement.startswith("visits:engagement:")


async def test_two_consumer_instances_racing_on_the_same_issues_open_each_case_once(
    consumer_for: ConsumerFactory, visits: Visits, stored: Stored
) -> None:
    envs = [visits.issue() for _ in range(6)]
    a, b = consumer_for(name="intake.cases.a"), consumer_for(name="intake.cases.b")

    outcomes = await asyncio.gather(*(c.handle(visits.record(e)) for e in envs for c in (a, b, a)))

    assert "dead_lettered" not in outcomes
    counts = await stored.counts()
    assert (counts["cases"], counts["events"], counts["outbox"]) == (6, 6, 6)


async def test_issues_intake_cannot_act_on_are_dead_lettered_and_store_nothing(
    consumer_for: ConsumerFactory,
    visits: Visits,
    stored: Stored,
    dead_letters: FakeProducer,
    api: Api,
    registry: SchemaRegistry,
) -> None:
    existing = (await api.receive())["case_id"]
    before = await stored.counts()
    missing_officer = visits.issue(raised_by=None)
    # Valid JSON Schema, but contradictory or not in the form intake publishes.
    foreign_station = visits.issue(station="330603001")
    upper_subject = visits.issue(subject_id="sub_ABCDEFGHIJKL")
    registry.validate(foreign_station.type, foreign_station.data)
    registry.validate(upper_subject.type, upper_subject.data)
    # An issue id that is already some other case's id: a producer bug, not a duplicate.
    collision = visits.issue(issue_id=existing)
    consumer = consumer_for()

    outcomes = await deliver(
        consumer, visits, [missing_officer, foreign_station, upper_subject, collision]
    )
    undecodable = visits.record(visits.issue())
    undecodable = dataclasses.replace(undecodable, value=b"not json")

    assert outcomes == ["dead_lettered"] * 4
    assert await consumer.handle(undecodable) == "dead_lettered"
    assert [topic for topic, _, _ in dead_letters.sent] == ["intake.dlq.v1"] * 5
    reasons = [dict(h)["dlq_reason"].decode() for _, _, h in dead_letters.sent]
    assert reasons[0].startswith("schema-invalid") and "raised_by" in reasons[0]
    assert "station must belong to the bureau" in reasons[1]
    assert "subject_id" in reasons[2]
    assert "IssueCollision" in reasons[3]
    assert await stored.counts() == before
    assert await stored.pool.fetchval("SELECT count(*) FROM processed_messages") == 0


async def test_other_visits_events_pass_by_without_a_case(
    consumer_for: ConsumerFactory, visits: Visits, stored: Stored, dead_letters: FakeProducer
) -> None:
    visit_id = uuid.uuid4().hex
    completed = visits.envelope(
        "jingmin.visits.VisitCompleted.v1", visit_id, {"visit_id": visit_id, "anything": 1}
    )

    assert await deliver(consumer_for(), visits, [completed]) == ["applied"]
    assert dead_letters.sent == []
    assert (await stored.counts())["cases"] == 0


async def test_the_person_visits_knows_is_the_case_subject_unless_they_were_erased(
    consumer_for: ConsumerFactory,
    visits: Visits,
    db: asyncpg.Pool,
    settings: KernelSettings,
    stored: Stored,
) -> None:
    known = subject_ref({"phone": "13800001111"}, settings)
    erased = subject_ref({"phone": "13800002222"}, settings)
    await Vault(db, settings).erase(None, erased, by="admin-1", reason="request")
    linked, forgotten, anonymous = (
        visits.issue(subject_id=known),
        visits.issue(subject_id=erased),
        visits.issue(),
    )

    await deliver(consumer_for(), visits, [linked, forgotten, anonymous])

    subjects = {
        r["case_id"]: r["subject_id"]
        for r in await stored.pool.fetch("SELECT case_id, subject_id FROM cases")
    }
    assert subjects[linked.data["issue_id"]] == known
    # 有警必接: served all the same, under a fresh subject that links to nothing erased.
    assert subjects[forgotten.data["issue_id"]] not in (erased, None)
    assert subjects[anonymous.data["issue_id"]].startswith("sub_")


def test_the_consumer_is_one_of_intakes_workers() -> None:
    path = "jingmin_intake.application.visits_consumer:run"
    assert path in SERVICE.workers
    assert callable(load_loop(path))
    assert SERVICE.dead_letter_topic == "intake.dlq.v1"


async def test_the_consumer_over_a_real_topic_opens_two_cases_from_four_deliveries(
    db: asyncpg.Pool,
    settings: KernelSettings,
    visits: Visits,
    registry: SchemaRegistry,
    kafka_bootstrap: str,
    api: Api,
) -> None:
    topic = f"test-visits-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, partitions=1)])
    live = settings.model_copy(update={"kafka_bootstrap_servers": kafka_bootstrap})
    producer = kafka.producer(live)
    await producer.start()
    source = make_consumer(
        kafka_bootstrap,
        f"intake-test-{uuid.uuid4().hex[:6]}",
        partitions=[TopicPartition(topic, 0)],
    )
    await source.start()
    consumer = build_consumer(
        db, producer, live, name=CONSUMER_NAME, validate=issue_validator(registry), retry_delay=0.01
    )
    outcomes: list[str] = []
    handle = consumer.handle

    async def counted(record: Record) -> Any:
        outcome = await handle(record)
        outcomes.append(outcome)
        return outcome

    consumer.handle = counted  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(source, stop))
    visit_id = uuid.uuid4().hex
    envs = [visits.issue(visit_id), visits.issue(visit_id)]
    try:
        for env in envs * 2:  # one visit, two issues, every message delivered twice
            await producer.send_and_wait(
                topic, value=env.kafka_value(), key=env.key.encode(), headers=env.kafka_headers()
            )
        await wait_for(lambda: len(outcomes) == 4, timeout=30, message="messages not consumed")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await source.stop()
        await producer.stop()

    assert sorted(outcomes) == ["applied", "applied", "duplicate", "duplicate"]
    assert len(await cases(db)) == 2
    for env in envs:
        case = (await api.get(env.data["issue_id"]))["case"]
        assert case["channel"] == "field"
        assert case["source_ref"] == f"visits:visit:{visit_id}#{env.data['issue_id']}"


async def test_the_worker_loop_joins_its_group_and_opens_the_case(
    db: asyncpg.Pool,
    settings: KernelSettings,
    visits: Visits,
    kafka_bootstrap: str,
    stored: Stored,
) -> None:
    # What `jingmin worker --service intake` runs, on a topic of its own.
    topic = f"test-visits-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, partitions=2)])
    live = settings.model_copy(update={"kafka_bootstrap_servers": kafka_bootstrap})
    env = visits.issue()
    producer = kafka.producer(live)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, value=env.kafka_value(), key=env.key.encode(), headers=env.kafka_headers()
        )
    finally:
        await producer.stop()
    stop = asyncio.Event()
    task = asyncio.create_task(consume(db, live, stop, topic=topic))
    try:

        async def opened() -> bool:
            return (await stored.counts())["cases"] == 1

        await wait_for(opened, timeout=60, message="the worker opened no case")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    assert await stored.pool.fetchval("SELECT count(*) FROM processed_messages") == 1
