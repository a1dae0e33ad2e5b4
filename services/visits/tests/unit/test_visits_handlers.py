"""Callback command handling on the in-memory unit of work: no PostgreSQL, no broker."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from eventkit.auth import Principal
from eventkit.commands import CommandRequest, write
from eventkit.domain import Fact, IllegalTransition, NotFound
from eventkit.personal import Vault
from eventkit.settings import KernelSettings
from eventkit.store import InMemoryEventStore
from jingmin_visits.application.handlers import CALLBACKS, CallbackCommands
from jingmin_visits.domain.callback import Callback, Resolution, callback_id
from jingmin_visits.domain.policy import CallbackPolicy
from jingmin_visits.domain.vocabulary import AttemptOutcome

SHANGHAI = ZoneInfo("Asia/Shanghai")
RESOLVED = datetime(2026, 5, 1, 10, 0, tzinfo=SHANGHAI)
CASE = "0123456789abcdef0123456789abcdef"
CB = callback_id(CASE, "case_resolved")
OFFICER = Principal("p1001", frozenset({"officer"}), ("330602",))


def commands(store: InMemoryEventStore, now: datetime) -> CallbackCommands:
    settings = KernelSettings(master_key=base64.b64encode(b"k" * 32).decode())
    return CallbackCommands(store, Vault(None, settings), clock=lambda: now)


async def scheduled(store: InMemoryEventStore) -> None:
    resolution = Resolution(
        case_id=CASE,
        bureau="330602",
        station="330602001",
        kind="consultation",
        channel="online",
        category="household.transfer",
        subject_id="sub_ABCDEFGH1234",
        resolved_at=RESOLVED,
    )
    cb = Callback(CB)
    facts = cb.decide(resolution, CallbackPolicy(), opted_out=False)
    async with store.transaction() as tx:
        await write(tx, CALLBACKS, CB, cb, facts, {"actor": "test"}, RESOLVED)  # type: ignore[arg-type]


async def reached(cb: Callback, conn: Any, now: datetime) -> list[Fact]:
    return cb.attempt(AttemptOutcome.REACHED, now, now)


async def test_an_attempt_is_recorded_with_its_outbox_row_and_read_model() -> None:
    store = InMemoryEventStore()
    await scheduled(store)
    status, body = await commands(store, RESOLVED + timedelta(hours=1)).execute(
        CommandRequest(OFFICER), CB, reached
    )
    assert (status, body["callback_id"], body["version"]) == (200, CB, 2)
    assert [m.aggregate_id for m in store.outbox] == [CB] * len(store.outbox)
    assert [c.args[0] for c in store.changes] == [CB, CB]


async def test_a_command_on_an_unknown_callback_is_not_found() -> None:
    store = InMemoryEventStore()
    with pytest.raises(NotFound):
        await commands(store, RESOLVED).execute(CommandRequest(OFFICER), CB, reached)


async def test_an_expired_callback_is_expired_once_and_then_refuses_attempts() -> None:
    store = InMemoryEventStore()
    await scheduled(store)
    late = commands(store, RESOLVED + timedelta(days=60))
    assert await late.expire(CB) == 1
    assert await late.expire(CB) == 0
    with pytest.raises(IllegalTransition) as refused:
        await late.execute(CommandRequest(OFFICER), CB, reached)
    assert refused.value.extensions == {"callback_status": "expired"}
