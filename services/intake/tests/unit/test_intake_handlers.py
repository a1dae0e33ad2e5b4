"""Intake's command handling on the in-memory unit of work: no PostgreSQL, no broker."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventkit.auth import Principal
from eventkit.commands import CommandRequest
from eventkit.domain import IllegalTransition
from eventkit.personal import Vault
from eventkit.settings import KernelSettings
from eventkit.store import InMemoryEventStore
from jingmin_intake.application.handlers import CaseCommands
from jingmin_intake.domain.case import Case, Fact
from jingmin_intake.domain.policy import DeadlinePolicy

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
STATION = "330602001"
CASE_ID = "0" * 31 + "1"
OPERATOR = Principal("operator-1", frozenset({"intake_operator"}), ("330602",))


def commands(store: InMemoryEventStore, now: datetime = T0) -> CaseCommands:
    settings = KernelSettings(master_key=base64.b64encode(b"k" * 32).decode())
    return CaseCommands(store, Vault(None, settings), clock=lambda: now)  # type: ignore[arg-type]


async def receive(case: Case, policy: DeadlinePolicy, conn: Any, now: datetime) -> list[Fact]:
    data = {
        "bureau": "330602",
        "station": STATION,
        "channel": "call_110",
        "kind": "alarm",
        "priority": "urgent",
        "area_type": "urban",
        "branch": "patrol",
        "subject_id": "sub_abcdefghijkl",
    }
    due = policy.on_receipt("alarm", "call_110", "urgent", now)
    return case.receive(data, due, now, now)


async def test_receiving_a_case_writes_its_event_outbox_row_and_read_model() -> None:
    store = InMemoryEventStore()
    status, body = await commands(store).execute(
        CommandRequest(OPERATOR), CASE_ID, receive, new_in=STATION, status=201
    )
    assert (status, body["case_id"], body["version"], body["status"]) == (
        201,
        CASE_ID,
        1,
        "received",
    )
    assert [e.type for e in await store.load(CASE_ID)] == ["CaseReceived"]
    assert len(store.outbox) >= 1 and all(m.aggregate_id == CASE_ID for m in store.outbox)
    (projection,) = store.changes
    assert projection.args[0] == CASE_ID and projection.args[7] == "patrol"


async def test_an_idempotent_retry_gets_the_first_answer_and_writes_nothing() -> None:
    store = InMemoryEventStore()
    request = CommandRequest(OPERATOR, idempotency_key="k1", fingerprint="f1")
    first = await commands(store).execute(request, CASE_ID, receive, new_in=STATION, status=201)
    again = await commands(store).execute(request, CASE_ID, receive, new_in=STATION, status=201)
    assert again == first
    assert len(await store.load(CASE_ID)) == 1


async def test_receiving_the_same_case_twice_is_an_illegal_transition() -> None:
    store = InMemoryEventStore()
    request = CommandRequest(OPERATOR)
    await commands(store).execute(request, CASE_ID, receive, new_in=STATION)
    with pytest.raises(IllegalTransition) as refused:
        await commands(store).execute(request, CASE_ID, receive)
    assert refused.value.extensions == {"case_status": "received"}


async def test_the_sweeper_records_each_breach_once() -> None:
    store = InMemoryEventStore()
    await commands(store).execute(CommandRequest(OPERATOR), CASE_ID, receive, new_in=STATION)
    later = commands(store, T0 + timedelta(days=60))
    grace = timedelta(seconds=DeadlinePolicy().sweep_grace_seconds)
    breaches = await later.sweep(CASE_ID, grace)
    assert breaches >= 1
    assert await later.sweep(CASE_ID, grace) == 0
    assert all(m.aggregate_id == CASE_ID for m in store.outbox)
