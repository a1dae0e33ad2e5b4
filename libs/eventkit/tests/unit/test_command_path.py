"""The kernel's one command path on the in-memory store: no PostgreSQL, no broker.

A toy aggregate (a lamp a station switches on and off) stands in for a service's: the path
loads it, authorises on its station, decides, and writes events, outbox and read model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from eventkit.auth import Principal
from eventkit.commands import CommandRequest, Stream, execute, retrying
from eventkit.domain import Fact, IllegalTransition, InvalidCommand, NotFound
from eventkit.problems import Problem, problem_of
from eventkit.store import (
    Change,
    ConcurrencyConflict,
    InMemoryEventStore,
    NewEvent,
    OutboxMessage,
    RecordedEvent,
)

NOW = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
STATION = "330602001"


@dataclass
class Lamp:
    lamp_id: str
    version: int = 0
    status: str | None = None
    station: str | None = None

    def apply(self, fact: Fact) -> None:
        self.version += 1
        self.status = "on" if fact.type == "SwitchedOn" else "off"
        self.station = fact.data.get("station", self.station)


def rebuild(lamp_id: str, history: Sequence[RecordedEvent]) -> Lamp:
    lamp = Lamp(lamp_id)
    for e in history:
        lamp.apply(Fact(e.type, dict(e.data), e.occurred_at))
    return lamp


def to_event(lamp: Lamp, fact: Fact, metadata: Mapping[str, Any]) -> NewEvent:
    data = {"station": lamp.station, **fact.data}
    return NewEvent(fact.type, data, fact.occurred_at, STATION[:6], metadata=metadata)


def publish(r: RecordedEvent) -> list[OutboxMessage]:
    return [OutboxMessage(r.event_id, "lamp", r.stream_id, r.type, "lamps.v1", {}, {})]


def row(
    lamp: Lamp, events: Sequence[NewEvent], history: Sequence[RecordedEvent], now: datetime
) -> list[Change]:
    return [Change(("UPSERT lamp",), (lamp.lamp_id, lamp.status, lamp.version))]


LAMPS: Stream[Lamp] = Stream(
    noun="lamp",
    id_field="lamp_id",
    stream_type="lamp",
    rebuild=rebuild,
    to_event=to_event,
    publish=publish,
    changes=row,
    status_field="lamp_status",
)


def request(scope: str = "330602") -> CommandRequest:
    return CommandRequest(Principal("officer-1", frozenset({"officer"}), (scope,)))


async def switch_on(lamp: Lamp, tx: Any, now: datetime) -> list[Fact]:
    if lamp.status == "on":
        raise IllegalTransition("the lamp is on already")
    return [Fact("SwitchedOn", {"station": lamp.station or STATION}, now)]


async def run(
    store: InMemoryEventStore, lamp_id: str, decide: Any = switch_on, **kw: Any
) -> tuple[int, dict[str, Any]]:
    return await execute(
        store,  # type: ignore[arg-type]
        kw.pop("req", request()),
        LAMPS,
        lamp_id,
        decide,
        roles=("officer",),
        clock=lambda: NOW,
        **kw,
    )


async def test_a_new_item_is_created_with_its_outbox_row_and_read_model() -> None:
    store = InMemoryEventStore()
    status, body = await run(store, "l1", new_in=STATION, fresh_id=True, status=201)
    assert (status, body["lamp_id"], body["version"], body["status"]) == (201, "l1", 1, "on")
    assert [m.type for m in store.outbox] == ["SwitchedOn"]
    assert [c.args for c in store.changes] == [("l1", "on", 1)]


async def test_a_command_on_a_missing_item_is_not_found_and_writes_nothing() -> None:
    store = InMemoryEventStore()
    with pytest.raises(NotFound) as refused:
        await run(store, "nope")
    assert problem_of(refused.value).status == 404
    assert store.log == [] and store.outbox == [] and store.changes == []


async def test_an_illegal_transition_is_a_409_naming_the_items_status() -> None:
    store = InMemoryEventStore()
    await run(store, "l1", new_in=STATION, fresh_id=True)
    with pytest.raises(IllegalTransition) as refused:
        await run(store, "l1")
    problem = problem_of(refused.value)
    assert (problem.status, problem.type) == (409, "urn:jingmin:problem:conflict")
    assert problem.extensions == {"lamp_status": "on"}
    assert len(store.log) == 1


async def test_an_invalid_command_is_a_422() -> None:
    async def refuse(lamp: Lamp, tx: Any, now: datetime) -> list[Fact]:
        raise InvalidCommand("no such switch")

    store = InMemoryEventStore()
    with pytest.raises(InvalidCommand) as refused:
        await run(store, "l1", refuse, new_in=STATION, fresh_id=True)
    assert problem_of(refused.value).status == 422
    assert store.log == []


async def test_a_caller_outside_the_items_station_is_refused() -> None:
    store = InMemoryEventStore()
    await run(store, "l1", new_in=STATION, fresh_id=True)
    with pytest.raises(Problem) as refused:
        await run(store, "l1", req=request(scope="330603"))
    assert refused.value.status == 403


async def test_a_pinned_version_the_item_moved_past_is_a_409() -> None:
    store = InMemoryEventStore()
    await run(store, "l1", new_in=STATION, fresh_id=True)

    async def switch_off(lamp: Lamp, tx: Any, now: datetime) -> list[Fact]:
        return [Fact("SwitchedOff", {}, now)]

    with pytest.raises(Problem) as refused:
        await run(store, "l1", switch_off, expected_version=0)
    assert refused.value.status == 409
    _, body = await run(store, "l1", switch_off, expected_version=1)
    assert (body["version"], body["status"]) == (2, "off")


async def test_creating_an_item_that_exists_is_a_409() -> None:
    store = InMemoryEventStore()
    await run(store, "l1", new_in=STATION, fresh_id=True)
    with pytest.raises(Problem) as refused:
        await run(store, "l1", new_in=STATION)
    assert refused.value.status == 409


async def test_retrying_decides_again_after_a_lost_race_and_gives_up_in_the_end() -> None:
    store = InMemoryEventStore()
    tries = 0

    async def always_loses(tx: Any) -> int:
        nonlocal tries
        tries += 1
        raise ConcurrencyConflict("l1", 0, 1)

    assert await retrying(store, always_loses, -1) == -1  # type: ignore[arg-type]
    assert tries == 5
