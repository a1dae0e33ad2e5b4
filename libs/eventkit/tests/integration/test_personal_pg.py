"""Crypto-shredding against real PostgreSQL: one key per person under races, erasure holds."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from eventkit import db
from eventkit.personal import ERASED, PersonalDataError, SubjectErased, Vault
from eventkit.settings import KernelSettings
from eventkit.store import KeyClaimRefused, NewEvent, PostgresEventStore
from eventkit.testing import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def pool(pg_server_url: str) -> AsyncIterator[asyncpg.Pool]:
    name = f"jingmin_test_personal_{secrets.token_hex(4)}"
    await db.ensure_database(pg_server_url, name)
    try:
        dsn = db.database_dsn(pg_server_url, name)
        db.migrate(dsn)
        created = await asyncpg.create_pool(dsn, min_size=1, max_size=30)
        assert created is not None
        yield created
        await created.close()
    finally:
        await db.drop_database(pg_server_url, name)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> KernelSettings:
    return KernelSettings(
        jingmin_home=tmp_path_factory.mktemp("home"),
        master_key=base64.b64encode(os.urandom(32)).decode(),
    )


def new_subject() -> str:
    return "sub_" + secrets.token_hex(8)


async def key_rows(pool: asyncpg.Pool, subject: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM subject_keys WHERE subject_id = $1", subject
    )
    return count


async def test_round_trip_inside_the_callers_transaction(
    pool: asyncpg.Pool, settings: KernelSettings
) -> None:
    vault, subject = Vault(pool, settings), new_subject()
    async with pool.acquire() as conn, conn.transaction():
        blobs = await vault.encrypt_fields(conn, subject, {"name": "张三", "phone": None})
    assert await key_rows(pool, subject) == 1
    # Another process (its own vault, cold cache) reads it back through the pool.
    assert await Vault(pool, settings).decrypt_fields(pool, blobs) == {
        "name": "张三",
        "phone": None,
    }


async def test_a_rolled_back_first_write_loses_nothing_later(
    pool: asyncpg.Pool, settings: KernelSettings
) -> None:
    vault, subject = Vault(pool, settings), new_subject()
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await vault.encrypt(conn, subject, "first try")
            raise RuntimeError("e.g. a concurrency conflict")
    assert await key_rows(pool, subject) == 0
    # The retry must not reuse the key that only ever existed in the rolled-back transaction.
    async with pool.acquire() as conn, conn.transaction():
        blob = await vault.encrypt(conn, subject, "second try")
    assert await Vault(pool, settings).decrypt(pool, blob) == "second try"
    assert await vault.decrypt(pool, blob) == "second try"


async def _waiting_on_a_lock(pool: asyncpg.Pool) -> bool:
    """Whether a session of this database waits for a lock another transaction holds."""
    return bool(
        await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    )


async def test_concurrent_first_writes_agree_on_one_key(
    pool: asyncpg.Pool, settings: KernelSettings
) -> None:
    subject = new_subject()

    async def write(i: int) -> dict[str, str]:
        # Separate vaults stand for separate service processes with separate caches.
        async with pool.acquire() as conn, conn.transaction():
            blob = await Vault(pool, settings).encrypt(conn, subject, f"value {i}")
            await asyncio.sleep(0.01)  # keep the transaction open while others race
            return blob

    blobs = await asyncio.gather(*(write(i) for i in range(20)))
    assert await key_rows(pool, subject) == 1
    reader = Vault(pool, settings)
    assert [await reader.decrypt(pool, b) for b in blobs] == [f"value {i}" for i in range(20)]


async def test_a_writer_waits_for_an_open_first_write_and_reuses_its_key(
    pool: asyncpg.Pool, settings: KernelSettings
) -> None:
    subject = new_subject()
    async with pool.acquire() as first:
        tx = first.transaction()
        await tx.start()
        a = await Vault(pool, settings).encrypt(first, subject, "a")

        async def second() -> dict[str, str]:
            async with pool.acquire() as conn, conn.transaction():
                return await Vault(pool, settings).encrypt(conn, subject, "b")

        pending = asyncio.create_task(second())
        await wait_for(lambda: _waiting_on_a_lock(pool), 30, message="the second never blocked")
        assert not pending.done()  # blocked until the first writer decides
        await tx.commit()
        b = await pending
    reader = Vault(pool, settings)
    assert (await reader.decrypt(pool, a), await reader.decrypt(pool, b)) == ("a", "b")


async def test_erase_shreds_one_person_and_records_who(
    pool: asyncpg.Pool, settings: KernelSettings
) -> None:
    vault, me, you = Vault(pool, settings), new_subject(), new_subject()
    async with pool.acquire() as conn, conn.transaction():
        mine = await vault.encrypt(conn, me, "王五")
        yours = await vault.encrypt(conn, you, "赵六")
    assert await vault.decrypt(pool, mine) == "王五"  # cached now

    async with pool.acquire() as conn, conn.transaction():
        assert await vault.erase(conn, me, by="officer-7", reason="request 42") is True
    assert await vault.decrypt(pool, mine) is None
    assert await vault.reveal(pool, mine) == ERASED
    assert await vault.decrypt(pool, yours) == "赵六"
    assert await key_rows(pool, me) == 0
    row = await pool.fetchrow(
        "SELECT erased_by, reason FROM subject_erasures WHERE subject_id = $1", me
    )
    assert tuple(row) == ("officer-7", "request 42")
    assert await vault.erase(None, me, by="officer-7", reason=None) is False
    with pytest.raises(SubjectErased):
        async with pool.acquire() as conn, conn.transaction():
            await vault.encrypt(conn, me, "back again?")
    assert await key_rows(pool, me) == 0


async def test_an_erasure_by_another_process_is_honoured_after_the_cache_ttl(
    pool: asyncpg.Pool, settings: KernelSettings
) -> None:
    service = Vault(pool, settings, cache_ttl=0.2)
    subject = new_subject()
    blob = await service.encrypt(None, subject, "x")
    assert await service.decrypt(pool, blob) == "x"
    await Vault(pool, settings).erase(None, subject, by="cli", reason=None)
    await asyncio.sleep(0.3)
    assert await service.decrypt(pool, blob) is None


async def test_an_erasure_in_flight_blocks_a_first_write(
    pool: asyncpg.Pool, settings: KernelSettings
) -> None:
    subject = new_subject()
    async with pool.acquire() as eraser:
        tx = eraser.transaction()
        await tx.start()
        await Vault(pool, settings).erase(eraser, subject, by="admin", reason=None)
        writer = asyncio.create_task(Vault(pool, settings).encrypt(None, subject, "x"))
        await wait_for(lambda: _waiting_on_a_lock(pool), 30, message="the writer never blocked")
        assert not writer.done()
        await tx.commit()
        with pytest.raises(SubjectErased):
            await writer
    assert await key_rows(pool, subject) == 0


async def test_a_different_master_key_cannot_open_the_data(
    pool: asyncpg.Pool, settings: KernelSettings, tmp_path: Path
) -> None:
    subject = new_subject()
    blob = await Vault(pool, settings).encrypt(None, subject, "x")
    other = KernelSettings(
        jingmin_home=tmp_path, master_key=base64.b64encode(os.urandom(32)).decode()
    )
    with pytest.raises(PersonalDataError):
        await Vault(pool, other).decrypt(pool, blob)


async def staged_append(vault: Vault, store: PostgresEventStore, subject: str) -> dict[str, Any]:
    """A one-statement command: the person's key is claimed by the append itself."""
    async with store.session() as tx:
        blobs = await vault.encrypt_fields_staged(tx.connection, subject, {"name": "李四"})
        event = NewEvent("Noted", {"person": blobs}, datetime.now(UTC), "330602")
        await tx.append(f"s-{secrets.token_hex(4)}", "note", 0, [event])
    return blobs


async def test_a_new_persons_key_commits_with_the_append_that_uses_it(
    pool: asyncpg.Pool, settings: KernelSettings
) -> None:
    store, subject = PostgresEventStore(pool), new_subject()
    blobs = await staged_append(Vault(pool, settings), store, subject)
    assert await key_rows(pool, subject) == 1
    assert await Vault(pool, settings).decrypt_fields(pool, blobs) == {"name": "李四"}


async def test_a_claim_for_a_person_with_another_key_fails_and_writes_nothing(
    pool: asyncpg.Pool, settings: KernelSettings
) -> None:
    store, subject = PostgresEventStore(pool), new_subject()
    async with pool.acquire() as conn:
        await Vault(pool, settings).encrypt(conn, subject, "已有的人")  # the key exists
    vault = Vault(pool, settings)  # cold cache: it guesses a fresh key
    before = await pool.fetchval("SELECT count(*) FROM events")
    with pytest.raises(KeyClaimRefused):
        await staged_append(vault, store, subject)
    assert await pool.fetchval("SELECT count(*) FROM events") == before
    # The retry asks the store for the key, and what it writes opens for everyone.
    blobs = await staged_append(vault, store, subject)
    assert await Vault(pool, settings).decrypt_fields(pool, blobs) == {"name": "李四"}
    assert await key_rows(pool, subject) == 1


async def test_a_claim_for_an_erased_person_fails_and_the_retry_says_so(
    pool: asyncpg.Pool, settings: KernelSettings
) -> None:
    store, subject = PostgresEventStore(pool), new_subject()
    await Vault(pool, settings).erase(None, subject, by="admin")
    vault = Vault(pool, settings)
    with pytest.raises(KeyClaimRefused):
        await staged_append(vault, store, subject)
    with pytest.raises(SubjectErased):
        await staged_append(vault, store, subject)
    assert await key_rows(pool, subject) == 0
