"""Tamper evidence: every complaint and supervision stream is hash-chained, and a direct SQL
edit (altered, deleted, inserted or cut-off events) is named by `jingmin verify-chain`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest
from eventkit import db as kernel_db
from eventkit.auth import issue_token
from eventkit.chain import ChainReport, chain_key, verify
from eventkit.settings import KernelSettings
from jingmin_complaints.entrypoints.app import create_app
from jingmin_complaints.service import SERVICE

if TYPE_CHECKING:
    from conftest import Api

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[4]


async def lifecycle(api: Api) -> str:
    complaint_id = (await api.receive())["complaint_id"]
    for action in ("acknowledge", "assign", "conclude", "reply", "close"):
        await api.command(complaint_id, action)
    return complaint_id


async def check(pool: asyncpg.Pool, settings: KernelSettings) -> ChainReport:
    async with pool.acquire() as conn:
        return await verify(conn, chain_key(settings))


async def test_every_kind_of_direct_edit_is_named(
    api: Api, db: asyncpg.Pool, settings: KernelSettings
) -> None:
    altered, deleted, inserted, truncated, untouched = [await lifecycle(api) for _ in range(5)]
    order = await api.post(
        "/v1/supervision/orders",
        {
            "bureau": api.BUREAU,
            "owner_unit": api.STATION,
            "order_type": "tracking",
            "item_type": "complaint",
            "item_id": untouched,
        },
        201,
    )
    clean = await check(db, settings)
    assert clean.intact and (clean.streams, clean.events) == (6, 31)

    # Someone with SQL access rewrites history in four streams.
    await db.execute(
        """UPDATE events SET data = jsonb_set(data, '{outcome}', '"unsubstantiated"')
           WHERE stream_id = $1 AND version = 4""",
        altered,
    )
    await db.execute("DELETE FROM events WHERE stream_id = $1 AND version = 3", deleted)
    await db.execute(
        """INSERT INTO events (stream_id, stream_type, version, event_id, type, schema_version,
               bureau, data, metadata, occurred_at)
           SELECT stream_id, stream_type, 7, $2::uuid, 'ComplaintReopened', schema_version,
               bureau, '{"reason": "review"}'::jsonb, metadata, occurred_at
           FROM events WHERE stream_id = $1 AND version = 6""",
        inserted,
        uuid.uuid4(),
    )
    await db.execute("DELETE FROM events WHERE stream_id = $1 AND version = 6", truncated)

    report = await check(db, settings)
    found = {f.stream_id: f for f in report.findings}
    assert set(found) == {altered, deleted, inserted, truncated}
    assert (found[altered].problem, found[altered].version) == ("altered", 4)
    assert (found[deleted].problem, found[deleted].version) == ("deleted", 3)
    assert (found[inserted].problem, found[inserted].version) == ("inserted", 7)
    assert (found[truncated].problem, found[truncated].version) == ("truncated", 6)
    assert found[altered].event_id is not None and "version 4" in str(found[altered])
    assert order["order_id"] not in found


async def test_an_inserted_event_with_renumbered_successors_is_named(
    api: Api, db: asyncpg.Pool, settings: KernelSettings
) -> None:
    complaint_id = await lifecycle(api)
    # Make room at version 3 (two steps: the primary key is checked row by row), then forge.
    await db.execute(
        "UPDATE events SET version = version + 1000 WHERE stream_id = $1 AND version >= 3",
        complaint_id,
    )
    await db.execute(
        "UPDATE events SET version = version - 999 WHERE stream_id = $1 AND version > 1000",
        complaint_id,
    )
    await db.execute(
        """INSERT INTO events (stream_id, stream_type, version, event_id, type, bureau, data,
               metadata, occurred_at, chain_prev, chain_hash)
           SELECT stream_id, stream_type, 3, $2::uuid, 'InvestigationExtended', bureau,
               '{"reason": "other"}'::jsonb, metadata, occurred_at, chain_hash,
               repeat('0', 64)
           FROM events WHERE stream_id = $1 AND version = 2""",
        complaint_id,
        uuid.uuid4(),
    )
    [finding] = (await check(db, settings)).findings
    assert (finding.problem, finding.version) == ("inserted", 3)


async def test_a_chain_checked_with_another_key_fails_everywhere(
    api: Api, db: asyncpg.Pool, settings: KernelSettings
) -> None:
    await lifecycle(api)
    other = KernelSettings(master_key="A" * 43 + "=")
    report = await check(db, other)
    assert not report.intact and report.findings[0].problem == "altered"


@pytest.fixture
async def named_database(pg_server_url: str) -> AsyncIterator[tuple[str, str]]:
    """The service's own database name (with a suffix), as `jingmin verify-chain` finds it."""
    suffix = f"_t{uuid.uuid4().hex[:8]}"
    name = SERVICE.database + suffix
    await kernel_db.ensure_database(pg_server_url, name)
    dsn = kernel_db.database_dsn(pg_server_url, name)
    await asyncio.to_thread(kernel_db.migrate, dsn, SERVICE.migrations)
    try:
        yield suffix, dsn
    finally:
        await kernel_db.drop_database(pg_server_url, name)


def verify_chain_cli(settings: KernelSettings, server: str, suffix: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "DATABASE_URL": server,
        "DATABASE_SUFFIX": suffix,
        "MASTER_KEY": settings.master_key or "",
        "JINGMIN_HOME": str(settings.jingmin_home),
    }
    done = subprocess.run(
        [sys.executable, "-m", "eventkit.cli", "verify-chain", "--service", "complaints"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


async def test_jingmin_verify_chain_passes_untouched_and_names_the_edited_event(
    named_database: tuple[str, str],
    pg_server_url: str,
    settings: KernelSettings,
    api_class: type[Api],
) -> None:
    suffix, dsn = named_database
    app = create_app(settings, dsn=dsn)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://c.test") as client:
            token = issue_token(settings, subject="dc-1", roles=["supervisor"], scopes=["330602"])
            headers = {"Authorization": f"Bearer {token}"}
            complaint_id = await lifecycle(api_class(client, headers))

    code, output = await asyncio.to_thread(verify_chain_cli, settings, pg_server_url, suffix)
    assert code == 0, output
    assert "complaints: 1 streams, 6 events: chain intact" in output

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """UPDATE events SET data = jsonb_set(data, '{category}', '"other"')
               WHERE stream_id = $1 AND version = 1""",
            complaint_id,
        )
        event_id = await conn.fetchval(
            "SELECT event_id::text FROM events WHERE stream_id = $1 AND version = 1", complaint_id
        )
    finally:
        await conn.close()
    code, output = await asyncio.to_thread(verify_chain_cli, settings, pg_server_url, suffix)
    assert code == 1, output
    assert f"stream {complaint_id} version 1 (event {event_id}): altered" in output
