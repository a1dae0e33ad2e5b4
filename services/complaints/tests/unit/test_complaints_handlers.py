"""Complaint command handling on the in-memory unit of work: no PostgreSQL, no broker."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from eventkit.auth import Principal
from eventkit.commands import CommandRequest
from eventkit.domain import Fact, IllegalTransition
from eventkit.personal import Vault
from eventkit.problems import Problem
from eventkit.settings import KernelSettings
from eventkit.store import InMemoryEventStore
from jingmin_complaints.application.handlers import MANAGE_ROLES, RECEIVE_ROLES, Commands
from jingmin_complaints.domain.complaint import Complaint
from jingmin_complaints.domain.policy import ComplaintPolicy

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2024, 3, 4, 9, 0, tzinfo=SHANGHAI)  # a Monday
ID = "c" * 32
STATION = "330602001"
SUPERVISOR = Principal("dc-1", frozenset({"supervisor"}), ("330602",))


def commands(store: InMemoryEventStore, now: datetime = T0) -> Commands:
    settings = KernelSettings(master_key=base64.b64encode(b"k" * 32).decode())
    return Commands(store, Vault(None, settings), clock=lambda: now)


async def receive(item: Complaint, policy: ComplaintPolicy, conn: Any, now: datetime) -> list[Fact]:
    data = {
        "bureau": "330602",
        "station": STATION,
        "subject_unit": STATION,
        "subject_officer": "p2001",
        "channel": "online",
        "category": "attitude",
        "level": "station",
        "subject_id": "sub_abcdefgh",
        "anonymous": False,
    }
    return item.receive(data, policy, now, now)


async def acknowledge(
    item: Complaint, policy: ComplaintPolicy, conn: Any, now: datetime
) -> list[Fact]:
    return item.acknowledge({}, policy, now, now)


async def filed(store: InMemoryEventStore) -> tuple[int, dict[str, Any]]:
    return await commands(store).execute(
        CommandRequest(SUPERVISOR),
        Complaint,
        ID,
        receive,
        roles=RECEIVE_ROLES,
        new_in=STATION,
        status=201,
        extra={"receipt_code": "R-1"},
    )


async def test_a_complaint_is_received_with_its_outbox_row_and_read_model() -> None:
    store = InMemoryEventStore()
    status, body = await filed(store)
    assert (status, body["complaint_id"], body["receipt_code"]) == (201, ID, "R-1")
    assert store.outbox and all(m.aggregate_id == ID for m in store.outbox)
    (row,) = store.changes
    assert row.args[0] == ID


async def test_acknowledging_twice_is_a_409_naming_the_complaints_status() -> None:
    store = InMemoryEventStore()
    await filed(store)
    later = commands(store, T0 + timedelta(hours=1))
    await later.execute(CommandRequest(SUPERVISOR), Complaint, ID, acknowledge, roles=MANAGE_ROLES)
    with pytest.raises(IllegalTransition) as refused:
        await later.execute(
            CommandRequest(SUPERVISOR), Complaint, ID, acknowledge, roles=MANAGE_ROLES
        )
    assert refused.value.extensions == {"item_status": "acknowledged"}


async def test_the_officer_complained_about_cannot_handle_the_complaint() -> None:
    store = InMemoryEventStore()
    await filed(store)
    subject = Principal("p2001", frozenset({"supervisor"}), ("330602",))
    with pytest.raises(Problem) as refused:
        await commands(store).execute(
            CommandRequest(subject), Complaint, ID, acknowledge, roles=MANAGE_ROLES
        )
    assert refused.value.status == 403
    assert len(await store.load(ID)) == 1


async def test_the_sweeper_records_an_overdue_acknowledgement_once() -> None:
    store = InMemoryEventStore()
    await filed(store)
    late = commands(store, T0 + timedelta(days=60))
    assert await late.sweep(Complaint, ID, 0) >= 1
    assert await late.sweep(Complaint, ID, 0) == 0
