"""Intake and visits messages in: complaints and service-recovery orders out, once each."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiokafka import TopicPartition
from eventkit import kafka
from eventkit.chain import chain_key, verify
from eventkit.consumer import IdempotentConsumer, make_consumer
from eventkit.contracts import SchemaRegistry
from eventkit.envelope import Envelope
from eventkit.personal import Vault
from eventkit.service import TopicSpec
from eventkit.settings import KernelSettings
from eventkit.testing import wait_for
from eventkit.topics import ensure_topics
from jingmin_complaints.application.consumers import SourceHandler, build_consumer
from jingmin_complaints.application.handlers import derived_id
from jingmin_complaints.integration.messages import CALLBACK_TOPIC, INTAKE_TOPIC

if TYPE_CHECKING:
    from conftest import Api, FakeProducer, Sources, Stored

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
ConsumerFactory = Callable[..., IdempotentConsumer]


async def deliver(
    consumer: IdempotentConsumer, sources: Sources, envelopes: list[Envelope]
) -> list[str]:
    outcomes = []
    for env in envelopes:
        topic = INTAKE_TOPIC if env.type.startswith("jingmin.intake.") else CALLBACK_TOPIC
        outcomes.append(await consumer.handle(sources.record(env, topic)))
    return outcomes


async def test_an_intake_complaint_case_opens_exactly_one_complaint(
    make_consumer: ConsumerFactory,
    sources: Sources,
    stored: Stored,
    api: Api,
    registry: SchemaRegistry,
    dead_letters: FakeProducer,
) -> None:
    case = sources.case_received(category="inaction")
    alarm = sources.case_received(kind="alarm", category="dispute.neighbour")
    consumer = make_consumer()

    assert await deliver(consumer, sources, [case, alarm, case]) == [
        "applied",
        "applied",
        "duplicate",
    ]
    # A fresh consumer (tracking table of another name) replays the topic: still one.
    assert await deliver(make_consumer(name="complaints.rebuilt"), sources, [case]) == ["applied"]

    case_id = case.data["case_id"]
    assert await stored.event_types() == ["ComplaintReceived"]
    detail = await api.get(f"/v1/complaints/{case_id}")
    summary = detail["complaint"]
    assert (summary["complaint_id"], summary["intake_case_id"]) == (case_id, case_id)
    assert (summary["channel"], summary["category"], summary["subject_unit"]) == (
        "call_110",
        "inaction",
        api.STATION,
    )
    assert detail["history"][0]["data"]["subject_id"] == case.data["subject_id"]
    assert detail["history"][0]["actor"] == "system:complaints-consumer"
    [row] = await stored.outbox()
    registry.validate(row["type"], row["payload"])
    assert row["headers"]["ce_causationid"] == case.id
    assert not dead_letters.sent


async def test_a_dissatisfied_callback_opens_a_recovery_order_due_in_five_working_days(
    make_consumer: ConsumerFactory,
    sources: Sources,
    stored: Stored,
    api: Api,
    registry: SchemaRegistry,
    settings: KernelSettings,
) -> None:
    case_id = uuid.uuid4().hex
    # Answered on Friday 27 Sep 2024 afternoon: Sunday 29 Sep is a make-up working day and
    # 1-7 October is the National Day holiday, so five working days end on 10 October.
    answered_at = datetime(2024, 9, 27, 15, 0, tzinfo=SHANGHAI)
    scheduled = sources.callback_scheduled(case_id)
    answered = sources.callback_answered(case_id, at=answered_at)
    consumer = make_consumer()

    outcomes = await deliver(consumer, sources, [scheduled, answered, answered])
    assert outcomes == ["applied", "applied", "duplicate"]
    assert await deliver(make_consumer(name="complaints.rebuilt"), sources, [answered]) == [
        "applied"
    ]

    order_id = derived_id("service-recovery", answered.data["callback_id"])
    assert await stored.event_types() == ["OrderIssued"]
    detail = await api.get(f"/v1/supervision/orders/{order_id}")
    order = detail["order"]
    assert (order["order_type"], order["owner_unit"], order["level"]) == (
        "service_recovery",
        api.STATION,
        "station",
    )
    due = datetime.fromisoformat(order["due_at"]).astimezone(SHANGHAI)
    assert due == datetime(2024, 10, 10, 23, 59, 59, tzinfo=SHANGHAI)
    assert (order["case_id"], order["callback_id"]) == (case_id, answered.data["callback_id"])

    # Reported back by the station: the follow-up callback is requested from visits.
    await api.post(f"/v1/supervision/orders/{order_id}/report", {"report": "所长已上门致歉"})
    outbox = await stored.outbox(order_id)
    assert [r["type"] for r in outbox] == [
        "jingmin.supervision.OrderIssued.v1",
        "jingmin.supervision.OrderOverdue.v1",  # answered in 2024: reported long after its due
        "jingmin.supervision.OrderReportedBack.v1",
        "jingmin.supervision.RecoveryFollowUpRequested.v1",
    ]
    follow_up = outbox[-1]
    assert follow_up["key"] == order_id
    assert follow_up["topic"] == "complaints.supervision.events.v1"
    assert follow_up["payload"] == {
        "order_id": order_id,
        "bureau": api.BUREAU,
        "station": api.STATION,
        "occurred_at": follow_up["payload"]["occurred_at"],
        "case_id": case_id,
        "callback_id": answered.data["callback_id"],
        "subject_id": scheduled.data["subject_id"],
    }
    for row in outbox:
        registry.validate(row["type"], row["payload"])
    async with stored.pool.acquire() as conn:  # written by the consumer, still chained
        assert (await verify(conn, chain_key(settings))).intact


async def test_a_callback_that_asks_for_a_complaint_opens_one_and_a_satisfied_one_nothing(
    make_consumer: ConsumerFactory, sources: Sources, stored: Stored, api: Api
) -> None:
    case_id, other_case = uuid.uuid4().hex, uuid.uuid4().hex
    wants = sources.callback_answered(
        case_id,
        satisfaction="dissatisfied",
        wants_complaint=True,
        complaint_category="attitude",
    )
    fine = sources.callback_answered(other_case, satisfaction="satisfied")
    consumer = make_consumer()
    await deliver(consumer, sources, [wants, fine, wants])

    complaint_id = derived_id("callback-complaint", wants.data["callback_id"])
    assert sorted(await stored.event_types()) == ["ComplaintReceived", "OrderIssued"]
    summary = (await api.get(f"/v1/complaints/{complaint_id}"))["complaint"]
    assert (summary["channel"], summary["category"], summary["callback_id"]) == (
        "callback",
        "attitude",
        wants.data["callback_id"],
    )


async def test_every_complaint_carries_the_party_category_of_its_case(
    make_consumer: ConsumerFactory,
    sources: Sources,
    stored: Stored,
    api: Api,
    registry: SchemaRegistry,
) -> None:
    """Equity figures count complaints by party: a complaint filed as an intake case, one
    ticked on a callback's survey, and one received through the API about a case."""
    filed = sources.case_received(party="vulnerable")
    followed = sources.case_received(kind="alarm", category="dispute", party="non_local")
    about = sources.case_received(kind="consultation", category="household", party="local")
    case_id = followed.data["case_id"]
    wants = sources.callback_answered(
        case_id, satisfaction="satisfied", wants_complaint=True, complaint_category="attitude"
    )
    await deliver(make_consumer(), sources, [filed, followed, about, wants])
    via_api = await api.receive(intake_case_id=about.data["case_id"])
    stated = await api.receive(party_category="non_local")
    unknown = await api.receive()
    received = {
        r["key"]: r["payload"]
        for r in await stored.outbox()
        if r["type"] == "jingmin.complaints.ComplaintReceived.v1"
    }
    for payload in received.values():
        registry.validate("jingmin.complaints.ComplaintReceived.v1", payload)
    callback_complaint = derived_id("callback-complaint", wants.data["callback_id"])
    assert {k: p.get("party_category") for k, p in received.items()} == {
        filed.data["case_id"]: "vulnerable",
        callback_complaint: "non_local",
        via_api["complaint_id"]: "local",
        stated["complaint_id"]: "non_local",
        unknown["complaint_id"]: None,  # nothing says who: counted apart, not guessed
    }


async def test_a_dissatisfied_follow_up_is_owned_a_level_up(
    make_consumer: ConsumerFactory, sources: Sources, api: Api
) -> None:
    case_id = uuid.uuid4().hex
    again = sources.callback_answered(case_id, trigger="service_recovery")
    await deliver(make_consumer(), sources, [again])
    order_id = derived_id("service-recovery", again.data["callback_id"])
    order = (await api.get(f"/v1/supervision/orders/{order_id}"))["order"]
    assert (order["level"], order["owner_unit"]) == ("bureau", api.BUREAU)


async def test_a_malformed_message_goes_to_the_dead_letter_topic(
    make_consumer: ConsumerFactory, sources: Sources, stored: Stored, dead_letters: FakeProducer
) -> None:
    bad = sources.case_received()
    bad = Envelope(**{**bad.__dict__, "data": {**bad.data, "kind": "grievance"}})
    assert await deliver(make_consumer(), sources, [bad]) == ["dead_lettered"]
    assert await stored.event_types() == []
    [(topic, _value, headers)] = dead_letters.sent
    assert topic == "complaints.dlq.v1"
    assert dict(headers)["dlq_reason"].startswith(b"schema-invalid")


async def test_the_consumer_reads_the_real_topics(
    db: asyncpg.Pool,
    sources: Sources,
    stored: Stored,
    kafka_bootstrap: str,
    settings: KernelSettings,
) -> None:
    """Delivered twice through a real broker, the case still opens one complaint."""
    topic = f"intake.case.events.test.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, partitions=1)])
    producer = kafka.producer(settings, kafka_bootstrap)
    await producer.start()
    try:
        case = sources.case_received()
        for _ in range(2):
            await producer.send_and_wait(
                topic,
                value=case.kafka_value(),
                key=case.key.encode(),
                headers=case.kafka_headers(),
            )
        source = make_consumer(
            kafka_bootstrap, f"g-{uuid.uuid4().hex[:6]}", partitions=[TopicPartition(topic, 0)]
        )
        await source.start()
        stop = asyncio.Event()
        handler = SourceHandler(chain_key(settings), Vault(db, settings))
        consumer = build_consumer(db, producer, handler)
        task = asyncio.create_task(consumer.run(source, stop))
        try:
            tp = TopicPartition(topic, 0)

            async def both_read() -> bool:
                return bool(await stored.event_types()) and await source.position(tp) >= 2

            await wait_for(both_read, timeout=30)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await source.stop()
    finally:
        await producer.stop()
    assert await stored.event_types() == ["ComplaintReceived"]
    processed = await db.fetchval("SELECT count(*) FROM processed_messages")
    assert processed == 1
