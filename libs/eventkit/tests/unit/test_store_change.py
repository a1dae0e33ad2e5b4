"""A read-model change renumbers its parameters to ride on the append statement."""

from __future__ import annotations

from datetime import UTC, datetime

from eventkit.store import Change, InMemoryEventStore, NewEvent


def test_a_change_renumbers_every_parameter_past_the_append() -> None:
    change = Change(("INSERT INTO t (a, b) VALUES ($1, $12)", "DELETE FROM u WHERE x = $2"), ())
    assert change.shifted(17) == (
        "INSERT INTO t (a, b) VALUES ($18, $29)",
        "DELETE FROM u WHERE x = $19",
    )


def test_a_change_on_its_own_runs_every_cte() -> None:
    change = Change(("INSERT INTO t VALUES ($1)", "INSERT INTO u VALUES ($1)"), (1,))
    assert change.statement() == (
        "WITH c0 AS (INSERT INTO t VALUES ($1)), c1 AS (INSERT INTO u VALUES ($1)) SELECT 1"
    )


async def test_the_in_memory_session_keeps_the_changes_that_rode_on_the_append() -> None:
    store = InMemoryEventStore()
    change = Change(("INSERT INTO t VALUES ($1)",), ("x",))
    event = NewEvent("V1.Thing", {"a": 1}, datetime(2026, 1, 1, tzinfo=UTC), "330602")
    async with store.session() as tx:
        await tx.append("s1", "thing", 0, [event], changes=[change])
        assert tx.changes == [change]
    assert [e.version for e in await store.load("s1")] == [1]
