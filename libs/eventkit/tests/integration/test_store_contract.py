"""One contract for every event store: the in-memory fake must behave like PostgreSQL.

Each test runs against `InMemoryEventStore` and against `PostgresEventStore` on a fresh
database, so a handler test that passes on the fake means the same thing in production.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from eventkit.problems import Problem
from eventkit.store import (
    START,
    Change,
    ConcurrencyConflict,
    EventStore,
    InMemoryEventStore,
    NewEvent,
    OutboxMessage,
    PostgresEventStore,
    RecordedEvent,
)
from eventkit.testing import wait_for

BEIJING = timezone(timedelta(hours=8))
TOPIC = "test.case.events.v1"


@dataclass
class Contract:
    """A store under test plus a way to see its outbox (a table, or a list in memory)."""

    store: EventStore
    pool: asyncpg.Pool | None = None

    async def outbox(self) -> list[OutboxMessage]:
        if self.pool is None:
            assert isinstance(self.store, InMemoryEventStore)
            return list(self.store.outbox)
        rows = await self.pool.fetch(
            "SELECT event_id, aggregate_type, aggregate_id, type, topic, payload::text AS p, "
            "headers::text AS h FROM outbox ORDER BY id"
        )
        return [
            OutboxMessage(
                r["event_id"],
                r["aggregate_type"],
                r["aggregate_id"],
                r["type"],
                r["topic"],
                json.loads(r["p"]),
                json.loads(r["h"]),
            )
            for r in rows
        ]

    async def read_model(self) -> list[tuple[Any, ...]]:
        """What the read-model changes wrote: rows here, the changes' arguments in memory."""
        if self.pool is None:
            assert isinstance(self.store, InMemoryEventStore)
            return [tuple(c.args) for c in self.store.changes]
        rows = await self.pool.fetch(
            "SELECT consumer, message_id FROM processed_messages ORDER BY processed_at"
        )
        return [tuple(r) for r in rows]

    async def read_all_settled(self, expected: int, **kw: Any) -> list[RecordedEvent]:
        """read_all, waiting out writers elsewhere on the server that started before ours.

        The Postgres store hides events behind any older transaction still open (on the
        whole server, not only this database) — by design; once they end, it is stable.
        """

        async def enough() -> list[RecordedEvent] | None:
            events = await self.store.read_all(**kw)
            return events if len(events) >= expected else None

        events: list[RecordedEvent] = await wait_for(
            enough, timeout=20, message="read_all never caught up"
        )
        return events


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.integration)])
def contract(request: pytest.FixtureRequest) -> Contract:
    if request.param == "memory":
        return Contract(InMemoryEventStore())
    # A fresh, migrated database per test (the `pool` fixture), so nothing leaks between tests.
    pool: asyncpg.Pool = request.getfixturevalue("pool")
    return Contract(PostgresEventStore(pool), pool)


def event(n: int = 0, type_: str = "CaseReceived", **data: Any) -> NewEvent:
    return NewEvent(
        type=type_,
        data={
            "n": n,
            "summary": "群众反映夜间施工噪音，影响休息",
            "地址": {"街道": "城关镇"},
            **data,
        },
        occurred_at=datetime(2024, 5, 1, 8, 30, n % 60, 123456, tzinfo=BEIJING),
        bureau="城关派出所",
        schema_version=2,
        metadata={"correlation_id": f"corr-{n}", "操作员": "张警官", "ip": "10.0.0.1"},
    )


def outbox_for(stream_id: str, events: Sequence[NewEvent]) -> list[OutboxMessage]:
    return [
        OutboxMessage(
            event_id=e.event_id,
            aggregate_type="case",
            aggregate_id=stream_id,
            type=e.type,
            topic=TOPIC,
            payload={"n": e.data["n"], "摘要": e.data["summary"]},
            headers={"ce_id": e.event_id, "ce_type": e.type},
        )
        for e in events
    ]


def stream() -> str:
    return f"case-{uuid.uuid4().hex[:8]}"


def ids(events: Sequence[RecordedEvent]) -> list[str]:
    return [e.event_id for e in events]


async def test_append_then_load_round_trips_the_event(contract: Contract) -> None:
    sid = stream()
    new = [event(1), event(2, type_="CaseClassified", 类别="噪音")]

    recorded = await contract.store.append(sid, "case", 0, new)
    loaded = await contract.store.load(sid)

    assert [(e.version, e.event_id) for e in loaded] == [(1, new[0].event_id), (2, new[1].event_id)]
    for stored, sent, returned in zip(loaded, new, recorded, strict=True):
        assert stored.stream_id == sid and stored.stream_type == "case"
        assert stored.type == sent.type
        assert stored.data == sent.data
        assert stored.data["summary"] == "群众反映夜间施工噪音，影响休息"
        assert stored.metadata == sent.metadata
        assert stored.bureau == "城关派出所" and stored.schema_version == 2
        assert stored.occurred_at == sent.occurred_at
        assert stored.occurred_at.utcoffset() is not None
        assert stored.recorded_at.utcoffset() is not None
        # What append returns is what a later load sees.
        assert (returned.version, returned.event_id, returned.data, returned.position) == (
            stored.version,
            stored.event_id,
            stored.data,
            stored.position,
        )
    assert loaded[1].data["类别"] == "噪音"
    assert loaded[0].position < loaded[1].position


async def test_loading_an_unknown_stream_gives_nothing(contract: Contract) -> None:
    assert await contract.store.load("case-nobody") == []


async def test_versions_start_at_one_and_increase_without_gaps(contract: Contract) -> None:
    sid = stream()
    await contract.store.append(sid, "case", 0, [event(1)])
    await contract.store.append(sid, "case", 1, [event(2), event(3)])
    await contract.store.append(sid, "case", 3, [event(4)])

    loaded = await contract.store.load(sid)

    assert [e.version for e in loaded] == [1, 2, 3, 4]
    assert [e.data["n"] for e in loaded] == [1, 2, 3, 4]


async def test_appending_nothing_changes_nothing(contract: Contract) -> None:
    sid = stream()
    assert await contract.store.append(sid, "case", 0, []) == []
    assert await contract.store.load(sid) == []


@pytest.mark.parametrize("expected", [0, 1, 3, 7])
async def test_wrong_expected_version_conflicts_and_writes_nothing(
    contract: Contract, expected: int
) -> None:
    sid = stream()
    await contract.store.append(sid, "case", 0, [event(1), event(2)])
    before = await contract.outbox()
    late = [event(3)]

    with pytest.raises(ConcurrencyConflict) as caught:
        await contract.store.append(sid, "case", expected, late, outbox=outbox_for(sid, late))

    assert caught.value.stream_id == sid and caught.value.expected == expected
    assert [e.version for e in await contract.store.load(sid)] == [1, 2]
    assert await contract.outbox() == before
    # The caller reloads and decides again: the right version now succeeds.
    await contract.store.append(sid, "case", 2, late)
    assert [e.version for e in await contract.store.load(sid)] == [1, 2, 3]


async def test_new_stream_is_appended_with_expected_version_zero(contract: Contract) -> None:
    sid = stream()
    with pytest.raises(ConcurrencyConflict):
        await contract.store.append(sid, "case", 1, [event(1)])
    assert await contract.store.load(sid) == []

    recorded = await contract.store.append(sid, "case", 0, [event(1)])
    assert [e.version for e in recorded] == [1]


async def test_of_two_concurrent_writers_exactly_one_wins(contract: Contract) -> None:
    sid = stream()
    await contract.store.append(sid, "case", 0, [event(1)])
    slow_event, fast_event = event(2), event(3)

    async def slow() -> None:
        async with contract.store.transaction() as tx:
            await tx.append(sid, "case", 1, [slow_event])
            await asyncio.sleep(0.3)

    async def fast() -> None:
        await asyncio.sleep(0.05)
        await contract.store.append(sid, "case", 1, [fast_event])

    results = await asyncio.gather(slow(), fast(), return_exceptions=True)

    failures = [r for r in results if r is not None]
    assert len(failures) == 1 and isinstance(failures[0], ConcurrencyConflict), results
    loaded = await contract.store.load(sid)
    assert [e.version for e in loaded] == [1, 2]
    winner = slow_event if results[0] is None else fast_event
    assert loaded[1].event_id == winner.event_id


async def test_read_all_returns_everything_in_commit_order_and_paginates(
    contract: Contract,
) -> None:
    streams = [stream() for _ in range(3)]
    written: list[str] = []
    versions = dict.fromkeys(streams, 0)
    for n in range(10):
        sid = streams[n % 3]
        new = event(n)
        await contract.store.append(sid, "case", versions[sid], [new])
        versions[sid] += 1
        written.append(new.event_id)

    everything = await contract.read_all_settled(10)
    assert ids(everything) == written

    pages: list[list[RecordedEvent]] = []
    position = START
    while page := await contract.store.read_all(after=position, limit=3):
        pages.append(page)
        position = page[-1].position
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert ids([e for p in pages for e in p]) == written
    assert await contract.store.read_all(after=everything[-1].position) == []
    assert ids(await contract.store.read_all(after=everything[4].position)) == written[5:]


async def test_read_all_filters_by_stream_type(contract: Contract) -> None:
    cases: list[str] = []
    for n in range(6):
        new = event(n)
        if n % 2 == 0:
            await contract.store.append(stream(), "case", 0, [new])
            cases.append(new.event_id)
        else:
            await contract.store.append(f"visit-{uuid.uuid4().hex[:8]}", "visit", 0, [new])
    await contract.read_all_settled(6)

    only_cases = await contract.store.read_all(stream_type="case")
    assert ids(only_cases) == cases
    assert {e.stream_type for e in only_cases} == {"case"}
    second_page = await contract.store.read_all(
        after=only_cases[0].position, limit=1, stream_type="case"
    )
    assert ids(second_page) == cases[1:2]
    assert await contract.store.read_all(stream_type="complaint") == []


async def test_outbox_rows_commit_with_the_events(contract: Contract) -> None:
    sid = stream()
    first = [event(1), event(2)]
    await contract.store.append(sid, "case", 0, first, outbox=outbox_for(sid, first))

    second = [event(3)]
    async with contract.store.transaction() as tx:
        await tx.append(sid, "case", 2, second)
        await tx.enqueue(outbox_for(sid, second))

    assert await contract.outbox() == outbox_for(sid, first + second)
    assert (await contract.outbox())[0].payload["摘要"] == "群众反映夜间施工噪音，影响休息"
    assert len(await contract.store.load(sid)) == 3


async def test_a_transaction_that_raises_leaves_no_events_and_no_outbox_rows(
    contract: Contract,
) -> None:
    sid = stream()
    new = [event(1)]

    with pytest.raises(RuntimeError, match="handler failed"):
        async with contract.store.transaction() as tx:
            await tx.append(sid, "case", 0, new)
            await tx.enqueue(outbox_for(sid, new))
            raise RuntimeError("handler failed after writing")

    assert await contract.store.load(sid) == []
    assert await contract.outbox() == []
    assert await contract.store.read_all() == []
    # The stream is still at version 0: nothing half-committed blocks the retry.
    await contract.store.append(sid, "case", 0, new, outbox=outbox_for(sid, new))
    assert len(await contract.outbox()) == 1


async def test_a_conflict_inside_a_transaction_writes_nothing(contract: Contract) -> None:
    # After a conflict the transaction is abandoned (no savepoint): the caller decides again
    # in a new one, and nothing of the first attempt survives.
    sid = stream()
    other = stream()
    with pytest.raises(ConcurrencyConflict):
        async with contract.store.transaction() as tx:
            await tx.append(other, "case", 0, [event(3)])
            await tx.append(sid, "case", 0, [event(1)])
            # Still expecting 0 inside the same transaction is stale: it wrote version 1.
            await tx.append(sid, "case", 0, [event(2)])
    assert await contract.store.load(sid) == []
    assert await contract.store.load(other) == []


async def test_two_appends_to_one_stream_in_one_transaction(contract: Contract) -> None:
    sid = stream()
    async with contract.store.transaction() as tx:
        await tx.append(sid, "case", 0, [event(1)])
        await tx.append(sid, "case", 1, [event(2), event(3)])

    assert [e.version for e in await contract.store.load(sid)] == [1, 2, 3]


async def test_occurred_at_keeps_the_instant_whatever_the_zone(contract: Contract) -> None:
    sid = stream()
    instant = datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    new = NewEvent(
        type="CaseReceived", data={}, occurred_at=instant.astimezone(BEIJING), bureau="b"
    )
    await contract.store.append(sid, "case", 0, [new])
    (loaded,) = await contract.store.load(sid)
    assert loaded.occurred_at == instant
    assert loaded.data == {} and loaded.metadata == {} and loaded.schema_version == 1


def seen(consumer: str, message: str) -> Change:
    """A stand-in read-model change (any table of the kernel's schema serves)."""
    return Change(
        ("INSERT INTO processed_messages (consumer, message_id) VALUES ($1, $2)",),
        (consumer, message),
    )


async def test_a_session_append_commits_events_outbox_and_read_model_together(
    contract: Contract,
) -> None:
    sid = stream()
    new = [event(1)]
    async with contract.store.session() as tx:
        await tx.append(sid, "case", 0, new, changes=[seen("projection", sid)])
        await tx.enqueue(outbox_for(sid, new))

    assert ids(await contract.store.load(sid)) == ids_of(new)
    assert await contract.outbox() == outbox_for(sid, new)
    assert await contract.read_model() == [("projection", sid)]


async def test_a_conflicting_session_append_writes_no_read_model_change(
    contract: Contract,
) -> None:
    sid = stream()
    await contract.store.append(sid, "case", 0, [event(1)])
    with pytest.raises(ConcurrencyConflict):
        async with contract.store.session() as tx:
            await tx.append(sid, "case", 0, [event(2)], changes=[seen("projection", sid)])
    assert [e.version for e in await contract.store.load(sid)] == [1]
    assert await contract.read_model() == []


@pytest.mark.integration
async def test_a_failing_read_model_change_takes_its_events_with_it(pool: asyncpg.Pool) -> None:
    # Outside a transaction the append and its change are one statement: all or nothing.
    store = PostgresEventStore(pool)
    sid = stream()
    await pool.execute("INSERT INTO processed_messages VALUES ('projection', $1)", sid)
    with pytest.raises(asyncpg.UniqueViolationError):
        async with store.session() as tx:
            await tx.append(sid, "case", 0, [event(1)], changes=[seen("projection", sid)])
    assert await store.load(sid) == []
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


def ids_of(events: Sequence[NewEvent]) -> list[str]:
    return [e.event_id for e in events]


async def test_an_idempotency_key_keeps_its_answer_only_if_the_transaction_commits(
    contract: Contract,
) -> None:
    with pytest.raises(RuntimeError):
        async with contract.store.transaction() as tx:
            await tx.remember("officer-1", "lost", "f", 201, {"id": "x"})
            raise RuntimeError("the command failed after all")
    async with contract.store.transaction() as tx:
        assert await tx.claim("officer-1", "lost", "f") is None
        await tx.remember("officer-1", "k1", "f", 201, {"id": "x", "名": "甲"})
    async with contract.store.transaction() as tx:
        earlier = await tx.claim("officer-1", "k1", "f")
        assert earlier is not None and (earlier.status, earlier.body) == (
            201,
            {"id": "x", "名": "甲"},
        )
        # Another principal's key of the same name is theirs alone.
        assert await tx.claim("officer-2", "k1", "f") is None
    with pytest.raises(Problem) as reused:
        async with contract.store.transaction() as tx:
            await tx.claim("officer-1", "k1", "another request")
    assert reused.value.status == 422
