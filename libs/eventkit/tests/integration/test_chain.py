"""Hash-chained streams (eventkit.chain) on real PostgreSQL: sealing, verifying, tampering."""

from __future__ import annotations

import asyncio
import base64
import os
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import asyncpg
import pytest
from eventkit.chain import ChainedEventStore, ChainedRow, canonical, chain_key, verify
from eventkit.settings import KernelSettings
from eventkit.store import ConcurrencyConflict, NewEvent, PostgresEventStore

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def key() -> bytes:
    return chain_key(KernelSettings(master_key=base64.b64encode(os.urandom(32)).decode()))


def events(n: int, start: int = 0) -> list[NewEvent]:
    return [
        NewEvent(
            type="ThingHappened",
            # Floats, nesting and non-ASCII text come back from jsonb re-ordered and re-typed:
            # the hash must not care.
            data={
                "n": start + i,
                "ratio": 2.0,
                "small": 0.1,
                "big": 1e20,
                "说明": {"z": 1, "a": [1]},
            },
            occurred_at=T0 + timedelta(minutes=start + i),
            bureau="330602",
            metadata={"actor": "tester"},
        )
        for i in range(n)
    ]


async def test_appends_are_chained_and_verify_clean(pool: asyncpg.Pool, key: bytes) -> None:
    store = ChainedEventStore(pool, key)
    await store.append("s-1", "thing", 0, events(2))
    async with store.transaction() as tx:  # two appends to one stream in one transaction
        await tx.append("s-1", "thing", 2, events(1, 2))
        await tx.append("s-1", "thing", 3, events(2, 3))
    await store.append("s-2", "thing", 0, events(1))
    async with pool.acquire() as conn:
        report = await verify(conn, key)
        rows = await conn.fetch(
            "SELECT version, chain_prev, chain_hash FROM events WHERE stream_id = 's-1' "
            "ORDER BY version"
        )
    assert report.intact and (report.streams, report.events) == (2, 6)
    assert rows[0]["chain_prev"] == ""
    assert all(b["chain_prev"] == a["chain_hash"] for a, b in pairwise(rows))


async def test_a_conflicting_append_seals_nothing(pool: asyncpg.Pool, key: bytes) -> None:
    store = ChainedEventStore(pool, key)
    await store.append("s-1", "thing", 0, events(1))
    results = await asyncio.gather(
        store.append("s-1", "thing", 1, events(1, 1)),
        store.append("s-1", "thing", 1, events(1, 1)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, ConcurrencyConflict) for r in results) == 1
    async with pool.acquire() as conn:
        assert (await verify(conn, key)).intact


async def test_tampering_is_named_and_unchained_writes_stand_out(
    pool: asyncpg.Pool, key: bytes
) -> None:
    store = ChainedEventStore(pool, key)
    for stream in ("altered", "deleted", "plain"):
        await store.append(stream, "thing", 0, events(3))
    await pool.execute(
        'UPDATE events SET metadata = \'{"actor": "someone else"}\' '
        "WHERE stream_id = 'altered' AND version = 2"
    )
    await pool.execute("DELETE FROM events WHERE stream_id = 'deleted' AND version = 2")
    # A writer that bypasses the chain (the plain store) leaves an unsealed event.
    await PostgresEventStore(pool).append("plain", "thing", 3, events(1, 3))
    async with pool.acquire() as conn:
        report = await verify(conn, key)
        one = await verify(conn, key, stream_id="altered")
    found = {f.stream_id: (f.problem, f.version) for f in report.findings}
    assert found == {
        "altered": ("altered", 2),
        "deleted": ("deleted", 2),
        "plain": ("inserted", 4),
    }
    assert [f.stream_id for f in one.findings] == ["altered"] and one.streams == 1


async def test_a_deleted_stream_is_missed_by_its_head(pool: asyncpg.Pool, key: bytes) -> None:
    store = ChainedEventStore(pool, key)
    await store.append("gone", "thing", 0, events(2))
    await pool.execute("DELETE FROM events WHERE stream_id = 'gone'")
    async with pool.acquire() as conn:
        [finding] = (await verify(conn, key)).findings
    assert (finding.stream_id, finding.problem, finding.version) == ("gone", "truncated", 1)


def test_canonical_form_ignores_key_order_and_integral_float_spelling() -> None:
    assert canonical({"b": 1, "a": 2.0}) == canonical({"a": 2, "b": 1.0}) == b'{"a":2,"b":1}'
    assert canonical({"x": 1e20}) == canonical({"x": 100000000000000000000})
    row = ChainedRow("s", "thing", 1, "e", "T", 1, "330602", {"n": 1}, {}, T0)
    assert row.digest(b"k" * 32, "") != row.digest(b"k" * 32, "", version=2)
    assert row.digest(b"k" * 32, "") != row.digest(b"j" * 32, "")
