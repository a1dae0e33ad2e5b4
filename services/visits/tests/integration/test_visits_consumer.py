"""Intake events in, callbacks out: exactly one decision per resolution, however delivered."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import TopicPartition
from eventkit import kafka
from eventkit.consumer import IdempotentConsumer, make_consumer
from eventkit.service import TopicSpec
from eventkit.settings import KernelSettings
from eventkit.testing import wait_for
from eventkit.topics import ensure_topics
from jingmin_visits.application.intake_consumer import IntakeHandler, build_consumer

if TYPE_CHECKING:
    from conftest import FakeProducer, Headers, Intake, Stored

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
ConsumerFactory = Callable[..., IdempotentConsumer]


async def deliver(consumer: IdempotentConsumer, intake: Intake, envelopes: list) -> list[str]:
    return [await consumer.handle(intake.record(env)) for env in envelopes]


async def test_a_resolved_eligible_case_schedules_exactly_one_callback(
    make_consumer: ConsumerFactory, intake: Intake, stored: Stored
) -> None:
    case_id, envelopes = intake.case()

    outcomes = await deliver(make_consumer(), intake, envelopes)

    assert outcomes == ["applied"] * 4
    [row] = await stored.callbacks(case_id)
    assert row["callback_id"] == f"cb-{case_id}-case_resolved"
    assert (row["status"], row["mode"], row["station"]) == ("scheduled", "sms", stored.STATION)
    assert row["subject_id"] == stored.SUBJECT
    assert await stored.event_types(row["callback_id"]) == ["CallbackScheduled"]
    [message] = await stored.outbox()
    assert message["type"] == "jingmin.visits.CallbackScheduled.v1"
    assert message["topic"] == "visits.callback.events.v1"
    assert message["key"] == row["callback_id"]
    # The cause is traceable: the intake message that triggered it.
    resolved = envelopes[2]
    causation = await stored.pool.fetchval("SELECT metadata->>'causation_id' FROM events")
    assert causation == resolved.id


async def test_a_domestic_violence_case_records_one_suppression(
    make_consumer: ConsumerFactory, intake: Intake, stored: Stored
) -> None:
    case_id, envelopes = intake.case(category="domestic_violence")

    await deliver(make_consumer(), intake, envelopes)

    [row] = await stored.callbacks(case_id)
    assert (row["status"], row["suppression_reason"]) == ("suppressed", "domestic_violence")
    assert row["due_at"] is None
    assert await stored.event_types() == ["CallbackSuppressed"]
    [message] = await stored.outbox()
    assert message["payload"]["reason"] == "domestic_violence"


@pytest.mark.parametrize("category", ["dispute.neighbour", "domestic_violence"])
async def test_every_message_delivered_twice_still_decides_once(
    make_consumer: ConsumerFactory, intake: Intake, stored: Stored, category: str
) -> None:
    case_id, envelopes = intake.case(category=category)
    consumer = make_consumer()

    first = await deliver(consumer, intake, [e for env in envelopes for e in (env, env)])
    # And a redelivery of everything after a rebalance, concurrently.
    again = await asyncio.gather(*(consumer.handle(intake.record(e)) for e in envelopes * 2))

    assert first == ["applied", "duplicate"] * 4
    assert set(again) == {"duplicate"}
    assert len(await stored.callbacks(case_id)) == 1
    assert len(await stored.event_types()) == 1
    assert len(await stored.outbox()) == 1


@pytest.mark.parametrize("category", ["dispute.neighbour", "domestic_violence"])
async def test_a_replay_of_the_whole_topic_decides_nothing_new(
    make_consumer: ConsumerFactory, intake: Intake, stored: Stored, category: str
) -> None:
    case_id, envelopes = intake.case(category=category)
    other_id, others = intake.case(kind="service", channel="window")
    await deliver(make_consumer(), intake, envelopes + others)
    before = await stored.counts()

    # `jingmin replay` republishes the same ce_ids: the same consumer sees duplicates, and a
    # new consumer (a fresh group, no processed rows) finds the callback streams already there.
    replayed = await deliver(make_consumer(), intake, envelopes + others)
    fresh = await deliver(
        make_consumer(name="visits.callbacks.rebuilt"), intake, envelopes + others
    )

    assert set(replayed) == {"duplicate"}
    assert set(fresh) == {"applied"}
    assert await stored.counts() == before
    assert len(await stored.callbacks(case_id)) == 1
    assert len(await stored.callbacks(other_id)) == 1


async def test_a_case_resolved_again_after_a_reopen_gets_no_second_callback(
    make_consumer: ConsumerFactory, intake: Intake, stored: Stored
) -> None:
    case_id, envelopes = intake.case()
    resolved_again = intake.envelope(
        "CaseResolved", case_id, 6, datetime.now(UTC) - timedelta(minutes=1), {}
    )

    await deliver(make_consumer(), intake, [*envelopes, resolved_again])

    assert len(await stored.callbacks(case_id)) == 1
    assert await stored.event_types() == ["CallbackScheduled"]


async def test_a_callback_due_at_23_00_local_is_rescheduled_to_08_00(
    make_consumer: ConsumerFactory, intake: Intake, stored: Stored
) -> None:
    # A 110 alarm resolved at 21:00 Beijing time: its 2 h SMS window ends at 23:00.
    day = datetime.now(SHANGHAI).date() - timedelta(days=1)
    resolved = datetime(day.year, day.month, day.day, 21, tzinfo=SHANGHAI)
    case_id, envelopes = intake.case(
        received_at=resolved - timedelta(minutes=40), resolved_at=resolved
    )

    await deliver(make_consumer(), intake, envelopes)

    [row] = await stored.callbacks(case_id)
    assert row["status"] == "scheduled"
    assert row["original_due_at"] == resolved + timedelta(hours=2)
    next_morning = datetime(day.year, day.month, day.day, 8, tzinfo=SHANGHAI) + timedelta(days=1)
    assert row["due_at"] == next_morning
    [message] = await stored.outbox()
    assert datetime.fromisoformat(message["payload"]["due_at"]) == next_morning
    assert datetime.fromisoformat(message["payload"]["original_due_at"]) == resolved + timedelta(
        hours=2
    )


async def test_a_person_who_opted_out_gets_a_recorded_suppression(
    make_consumer: ConsumerFactory,
    intake: Intake,
    stored: Stored,
    client: httpx.AsyncClient,
    officer: Headers,
) -> None:
    r = await client.post(
        "/v1/opt-outs",
        json={"subject_id": stored.SUBJECT, "bureau": stored.BUREAU},
        headers=officer,
    )
    assert r.status_code == 201, r.text
    case_id, envelopes = intake.case()

    await deliver(make_consumer(), intake, envelopes)

    [row] = await stored.callbacks(case_id)
    assert (row["status"], row["suppression_reason"]) == ("suppressed", "opted_out")


async def test_the_trigger_table_is_bureau_data(
    make_consumer: ConsumerFactory,
    intake: Intake,
    stored: Stored,
    client: httpx.AsyncClient,
    token: Callable[..., Headers],
) -> None:
    # A bureau that surveys only petitions, by phone within a day, and suppresses fraud too.
    policy = {
        "triggers": [{"trigger": "petition_resolved", "mode": "phone", "window_seconds": 86400}],
        "suppress_categories": {"fraud": "covert"},
    }
    r = await client.put(f"/v1/policies/{stored.BUREAU}", json=policy, headers=token("commander"))
    assert r.status_code == 200, r.text
    alarm_id, alarm = intake.case()
    petition_id, petition = intake.case(kind="petition", channel="letter")
    fraud_id, fraud = intake.case(kind="petition", channel="letter", category="fraud.online")

    await deliver(make_consumer(), intake, alarm + petition + fraud)

    assert await stored.callbacks(alarm_id) == []
    [row] = await stored.callbacks(petition_id)
    assert (row["trigger"], row["mode"]) == ("petition_resolved", "phone")
    assert row["due_at"] - petition[2].time <= timedelta(days=1, hours=12)
    [row] = await stored.callbacks(fraud_id)
    assert (row["status"], row["suppression_reason"]) == ("suppressed", "covert")


async def test_bad_intake_messages_are_dead_lettered_and_store_nothing(
    make_consumer: ConsumerFactory, intake: Intake, stored: Stored, dead_letters: FakeProducer
) -> None:
    case_id, envelopes = intake.case()
    resolved_only = envelopes[2]  # its CaseReceived never arrived
    invalid = intake.envelope("CaseResolved", case_id, 3, datetime.now(UTC), {"bogus": True})
    unknown = intake.envelope("CaseReceived", case_id, 1, datetime.now(UTC), {})
    consumer = make_consumer()

    outcomes = await deliver(consumer, intake, [resolved_only, invalid, unknown])
    undecodable = intake.record(envelopes[0])
    undecodable = dataclasses.replace(undecodable, value=b"not json")

    assert outcomes == ["dead_lettered"] * 3
    assert await consumer.handle(undecodable) == "dead_lettered"
    assert [topic for topic, _, _ in dead_letters.sent] == ["visits.dlq.v1"] * 4
    counts = await stored.counts()
    assert counts["events"] == counts["outbox"] == counts["callbacks"] == 0
    assert await stored.pool.fetchval("SELECT count(*) FROM intake_cases") == 0
    assert await stored.pool.fetchval("SELECT count(*) FROM processed_messages") == 0


async def test_the_consumer_over_a_real_topic(
    db: object, intake: Intake, stored: Stored, kafka_bootstrap: str
) -> None:
    topic = f"test-intake-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, partitions=1)])
    settings = KernelSettings(kafka_bootstrap_servers=kafka_bootstrap)
    producer = kafka.producer(settings, kafka_bootstrap)
    await producer.start()
    source = make_consumer(
        kafka_bootstrap,
        f"visits-test-{uuid.uuid4().hex[:6]}",
        partitions=[TopicPartition(topic, 0)],
    )
    await source.start()
    stop = asyncio.Event()
    consumer = build_consumer(db, producer, handler=IntakeHandler(), retry_delay=0.01)  # type: ignore[arg-type]
    task = asyncio.create_task(consumer.run(source, stop))
    try:
        case_id, envelopes = intake.case()
        dv_id, dv = intake.case(category="domestic_violence")
        for env in [*envelopes, *dv, *envelopes]:  # the first case arrives twice
            await producer.send_and_wait(
                topic, value=env.kafka_value(), key=env.key.encode(), headers=env.kafka_headers()
            )

        async def decided() -> bool:
            return len(await stored.callbacks()) == 2 and (
                await stored.pool.fetchval("SELECT count(*) FROM processed_messages") == 8
            )

        await wait_for(decided, timeout=30, message="callbacks were not decided from the topic")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await source.stop()
        await producer.stop()
    assert [r["status"] for r in await stored.callbacks(case_id)] == ["scheduled"]
    assert [r["status"] for r in await stored.callbacks(dv_id)] == ["suppressed"]
    assert len(await stored.event_types()) == 2
