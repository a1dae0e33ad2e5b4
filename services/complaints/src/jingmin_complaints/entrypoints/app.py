"""Composition root of the complaints API process."""

from __future__ import annotations

from eventkit.app import service_app
from eventkit.chain import ChainedEventStore, chain_key
from eventkit.contacts import contact_router
from eventkit.personal import Vault
from eventkit.settings import KernelSettings
from eventkit.store import PostgresEventStore
from fastapi import APIRouter, FastAPI

from jingmin_complaints.adapters.contacts import complaint_contact
from jingmin_complaints.application.handlers import Commands
from jingmin_complaints.entrypoints import places, public, routes, supervision_routes
from jingmin_complaints.entrypoints.formtoken import FormTokens
from jingmin_complaints.entrypoints.ratelimit import RateLimiter

DATABASE = "jingmin_complaints"


def create_app(settings: KernelSettings | None = None, dsn: str | None = None) -> FastAPI:
    settings = settings or KernelSettings()
    key = chain_key(settings)

    def commands(store: PostgresEventStore, vault: Vault) -> Commands:
        # Every write of this service is hash-chained (tamper evidence, DOMAIN §3.4).
        return Commands(ChainedEventStore(store.pool, key), vault)

    router = APIRouter()
    router.include_router(routes.router)
    router.include_router(supervision_routes.router)
    router.include_router(public.router)
    router.include_router(places.router)
    # Visits reads the complainant's contact at call time (complaint_concluded callbacks).
    router.include_router(contact_router(complaint_contact, noun="complaint"))
    app = service_app(
        "complaints",
        title="Jingmin complaints and supervision (投诉/督察)",
        database=DATABASE,
        router=router,
        commands=commands,
        settings=settings,
        dsn=dsn,
    )
    app.state.limiter = RateLimiter()
    app.state.form_tokens = FormTokens(settings)
    return app
