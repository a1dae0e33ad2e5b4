"""The enforcement, crime-victim and preventable-case callbacks, from the intake event that
triggers each one to one scheduled callback (or one recorded suppression), however delivered."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from eventkit.consumer import IdempotentConsumer

if TYPE_CHECKING:
    from conftest import FakeProducer, Intake, Stored

pytestmark = pytest.mark.integration

ConsumerFactory = Callable[..., IdempotentConsumer]

# (trigger, intake event type, its data, window in days, purpose)
CASES: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("enforcement_decision", "EnforcementDecided", {"decision": "administrative_penalty"}, 7,
     "survey"),
    ("crime_victim", "CaseClassified", {"crime_victim": True, "preventable": False,
                                        "category": "theft.burglary"}, 7, "notification"),
    ("preventable_case", "CaseClassified", {"crime_victim": False, "preventable": True}, 3,
     "prevention_advice"),
]  # fmt: skip


def follow_up(intake: Intake, type_: str, data: dict[str, Any], **kw: Any) -> tuple[str, list]:
    """A received case (resolved and closed) and then the triggering event, a day later."""
    case_id, envelopes = intake.case(**kw)
    at = envelopes[-1].time + timedelta(days=1)
    at = min(at, datetime.now(UTC) - timedelta(minutes=1))
    return case_id, [*envelopes, intake.envelope(type_, case_id, 5, at, data)]


@pytest.mark.parametrize(("trigger", "type_", "data", "days", "purpose"), CASES)
async def test_the_triggering_event_delivered_twice_schedules_one_callback(
    make_consumer: ConsumerFactory,
    intake: Intake,
    stored: Stored,
    trigger: str,
    type_: str,
    data: dict[str, Any],
    days: int,
    purpose: str,
) -> None:
    case_id, envelopes = follow_up(intake, type_, data, received_at=datetime.now(UTC) - timedelta(
        days=3))  # fmt: skip
    consumer = make_consumer()
    trigger_event = envelopes[-1]

    outcomes = [await consumer.handle(intake.record(e)) for e in [*envelopes, trigger_event]]
    # And again through a fresh consumer (a replay into a new group): the stream is there.
    fresh = await make_consumer(name="visits.callbacks.rebuilt").handle(
        intake.record(trigger_event)
    )

    assert outcomes == ["applied"] * 5 + ["duplicate"]
    assert fresh == "applied"
    rows = {r["trigger"]: r for r in await stored.callbacks(case_id)}
    assert set(rows) == {"case_resolved", trigger}
    row = rows[trigger]
    assert row["callback_id"] == f"cb-{case_id}-{trigger}"
    assert (row["status"], row["mode"], row["purpose"]) == ("scheduled", "phone", purpose)
    due = row["original_due_at"] or row["due_at"]
    assert due == trigger_event.time + timedelta(days=days)
    assert await stored.event_types(row["callback_id"]) == ["CallbackScheduled"]
    messages = [m for m in await stored.outbox() if m["key"] == row["callback_id"]]
    [message] = messages
    assert message["type"] == "jingmin.visits.CallbackScheduled.v1"
    assert (message["payload"]["trigger"], message["payload"]["purpose"]) == (trigger, purpose)
    causation = await stored.pool.fetchval(
        "SELECT metadata->>'causation_id' FROM events WHERE stream_id = $1", row["callback_id"]
    )
    assert causation == trigger_event.id


@pytest.mark.parametrize(("trigger", "type_", "data", "days", "purpose"), CASES)
async def test_a_sensitive_case_records_one_suppression_however_often_delivered(
    make_consumer: ConsumerFactory,
    intake: Intake,
    stored: Stored,
    trigger: str,
    type_: str,
    data: dict[str, Any],
    days: int,
    purpose: str,
) -> None:
    case_id, envelopes = follow_up(intake, type_, data, category="sexual_offence")
    consumer = make_consumer()

    for e in envelopes:
        await consumer.handle(intake.record(e))
        await consumer.handle(intake.record(e))
    await make_consumer(name="visits.callbacks.rebuilt").handle(intake.record(envelopes[-1]))

    rows = {r["trigger"]: r for r in await stored.callbacks(case_id)}
    assert set(rows) == {"case_resolved", trigger}
    assert (rows[trigger]["status"], rows[trigger]["suppression_reason"]) == (
        "suppressed",
        "sexual_offence",
    )
    assert await stored.event_types(rows[trigger]["callback_id"]) == ["CallbackSuppressed"]


async def test_one_classification_opens_both_callbacks_and_a_restatement_none(
    make_consumer: ConsumerFactory, intake: Intake, stored: Stored
) -> None:
    both = {"crime_victim": True, "preventable": True, "category": "fraud.telecom"}
    case_id, envelopes = follow_up(intake, "CaseClassified", both)
    restated = intake.envelope(
        "CaseClassified", case_id, 6, envelopes[-1].time + timedelta(seconds=30), both
    )

    consumer = make_consumer()
    for e in [*envelopes, restated]:
        assert await consumer.handle(intake.record(e)) == "applied"

    triggers = sorted(r["trigger"] for r in await stored.callbacks(case_id))
    assert triggers == ["case_resolved", "crime_victim", "preventable_case"]
    assert len(await stored.event_types()) == 3


async def test_a_case_classified_as_a_sexual_offence_is_not_surveyed_on_resolution(
    make_consumer: ConsumerFactory, intake: Intake, stored: Stored
) -> None:
    # Received as a dispute, classified before it was resolved: the classification's category
    # is remembered, and the resolution's callback is suppressed too.
    case_id, envelopes = intake.case()
    received, first_contact, resolved, closed = envelopes
    classified = intake.envelope(
        "CaseClassified",
        case_id,
        3,
        first_contact.time + timedelta(minutes=1),
        {"crime_victim": True, "preventable": False, "category": "sexual_offence.harassment"},
    )
    consumer = make_consumer()
    for e in (received, first_contact, classified, resolved, closed):
        await consumer.handle(intake.record(e))

    rows = await stored.callbacks(case_id)
    assert {(r["trigger"], r["status"], r["suppression_reason"]) for r in rows} == {
        ("crime_victim", "suppressed", "sexual_offence"),
        ("case_resolved", "suppressed", "sexual_offence"),
    }


async def test_an_opted_out_person_and_a_bureau_without_the_rule(
    make_consumer: ConsumerFactory,
    intake: Intake,
    stored: Stored,
    client: Any,
    officer: dict[str, str],
    token: Callable[..., dict[str, str]],
) -> None:
    # This bureau keeps only the enforcement callback, by SMS within a day.
    policy = {
        "triggers": [{"trigger": "enforcement_decision", "mode": "sms", "window_seconds": 86400}]
    }
    r = await client.put(f"/v1/policies/{stored.BUREAU}", json=policy, headers=token("commander"))
    assert r.status_code == 200, r.text
    enforced_id, enforced = follow_up(intake, *CASES[0][1:3])
    victim_id, victim = follow_up(intake, *CASES[1][1:3])
    opted_id, opted = follow_up(intake, *CASES[0][1:3], subject_id="sub_optedout1234")
    r = await client.post(
        "/v1/opt-outs", json={"subject_id": "sub_optedout1234", "bureau": stored.BUREAU},
        headers=officer,
    )  # fmt: skip
    assert r.status_code == 201, r.text

    consumer = make_consumer()
    for e in [*enforced, *victim, *opted]:
        await consumer.handle(intake.record(e))

    [row] = await stored.callbacks(enforced_id)
    assert (row["trigger"], row["mode"], row["status"]) == ("enforcement_decision", "sms",
                                                            "scheduled")  # fmt: skip
    assert await stored.callbacks(victim_id) == []
    rows = await stored.callbacks(opted_id)
    assert {(r["trigger"], r["status"], r["suppression_reason"]) for r in rows} == {
        ("enforcement_decision", "suppressed", "opted_out"),
        ("case_resolved", "suppressed", "opted_out"),
    }


async def test_a_follow_up_for_an_unknown_case_is_dead_lettered(
    make_consumer: ConsumerFactory, intake: Intake, stored: Stored, dead_letters: FakeProducer
) -> None:
    case_id, envelopes = follow_up(intake, *CASES[0][1:3])
    invalid = intake.envelope(
        "CaseClassified", case_id, 6, datetime.now(UTC), {"crime_victim": "yes"}
    )
    consumer = make_consumer()

    assert await consumer.handle(intake.record(envelopes[-1])) == "dead_lettered"
    assert await consumer.handle(intake.record(invalid)) == "dead_lettered"
    assert len(dead_letters.sent) == 2
    assert (await stored.counts())["events"] == 0
