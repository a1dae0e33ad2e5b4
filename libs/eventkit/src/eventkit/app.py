"""Composition root every service API shares: pool, store, vault, verifier, readiness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request, Response

from eventkit.auth import CurrentPrincipal, TokenVerifier, authorize
from eventkit.db import create_pool
from eventkit.http import create_app
from eventkit.personal import Vault
from eventkit.problems import forbidden, not_found
from eventkit.settings import KernelSettings, service_dsn
from eventkit.store import PostgresEventStore


async def broker_reachable(bootstrap: str) -> bool:
    """A TCP connect to the first bootstrap server: cheap enough for every /readyz."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1.0)
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    return True


def service_app(
    name: str,
    *,
    title: str,
    database: str,
    router: APIRouter,
    commands: Callable[[PostgresEventStore, Vault], Any],
    settings: KernelSettings | None = None,
    dsn: str | None = None,
    resources: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """A service's FastAPI app; `app.state` holds settings, pool, store, vault, verifier and
    the service's command handler (`commands(store, vault)`).

    `resources(app)` is entered once the state is set and left before the pool closes: the
    place for a service's own clients (an SMS gateway, another service's API).
    """
    settings = settings or KernelSettings()
    dsn = dsn or service_dsn(settings, database)

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
        app.state.commands = commands(store, vault)
        try:
            if resources is None:
                yield
            else:
                async with resources(app):
                    yield
        finally:
            await pool.close()

    async def readiness() -> dict[str, bool]:
        try:
            async with app.state.pool.acquire(timeout=2) as conn:
                database_ok = await conn.fetchval("SELECT true")
        except Exception:
            database_ok = False
        return {
            "database": bool(database_ok),
            "broker": await broker_reachable(settings.kafka_bootstrap_servers),
        }

    app = create_app(
        name, settings, title=title, version="1", lifespan=lifespan, readiness=readiness
    )
    app.include_router(router)
    return app


def vault_of(request: Request) -> Vault:
    """The app's Vault, typed, for route handlers that encrypt or reveal personal fields."""
    vault: Vault = request.app.state.vault
    return vault


def erasure_route(router: APIRouter, *, table: str, who: str) -> None:
    """Add `DELETE /subjects/{subject_id}`: crypto-shred a person's data key (admins only).

    `table` is the service's read model with `subject_id` and `bureau` columns: the caller
    needs every bureau that holds the person's data in scope, since one key serves them all.
    """

    async def erase_subject(
        subject_id: Annotated[str, Path(pattern=r"^sub_[A-Za-z0-9]{8,64}$")],
        request: Request,
        principal: CurrentPrincipal,
        reason: Annotated[str | None, Query(pattern=r"^[a-z0-9_.:-]{1,64}$")] = None,
    ) -> Response:
        if not principal.has_role("admin"):
            raise forbidden("requires the admin role")
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT DISTINCT bureau FROM {table} WHERE subject_id = $1", subject_id
            )
            if not rows:
                # Nothing of theirs here: an admin elsewhere must not shred a key by guessing
                # or copying a subject id (`jingmin erase` reaches every service).
                raise not_found(f"no data of {subject_id} in this service")
            for row in rows:
                authorize(principal, row["bureau"])
            await vault_of(request).erase(conn, subject_id, by=principal.subject, reason=reason)
        return Response(status_code=204)

    erase_subject.__doc__ = (
        f"Erase {who}: destroy their data key, so every copy of their fields is unreadable."
    )
    router.add_api_route(
        "/subjects/{subject_id}",
        erase_subject,
        methods=["DELETE"],
        status_code=204,
        responses={204: {"description": "The subject's data key is destroyed."}},
    )
