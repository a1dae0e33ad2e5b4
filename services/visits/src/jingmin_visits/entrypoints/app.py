"""Composition root of the visits API process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from eventkit.auth import TokenVerifier
from eventkit.db import create_pool
from eventkit.http import create_app as create_service_app
from eventkit.personal import Vault
from eventkit.settings import KernelSettings, service_dsn
from eventkit.store import PostgresEventStore
from fastapi import FastAPI

from jingmin_visits.application.handlers import CallbackCommands
from jingmin_visits.entrypoints.routes import router

DATABASE = "jingmin_visits"


async def _broker_reachable(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1.0)
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    return True


def create_app(settings: KernelSettings | None = None, dsn: str | None = None) -> FastAPI:
    settings = settings or KernelSettings()
    dsn = dsn or service_dsn(settings, DATABASE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(dsn)
        store = PostgresEventStore(pool)
        vault = Vault(pool, settings)
        app.state.settings = settings
        app.state.pool = pool
        app.state.store = store
        app.state.vault = vault
        app.state.verifier = TokenVerifier(settings)
        app.state.commands = CallbackCommands(store, vault)
        try:
            yield
        finally:
            await pool.close()

    async def readiness() -> dict[str, bool]:
        try:
            async with app.state.pool.acquire(timeout=2) as conn:
                database = await conn.fetchval("SELECT true")
        except Exception:
            database = False
        return {
            "database": bool(database),
            "broker": await _broker_reachable(settings.kafka_bootstrap_servers),
        }

    app = create_service_app(
        "visits",
        settings,
        title="Jingmin visits (走访/回访)",
        version="1",
        lifespan=lifespan,
        readiness=readiness,
    )
    app.include_router(router)
    return app
