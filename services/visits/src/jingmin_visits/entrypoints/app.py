"""Composition root of the visits API process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from eventkit.app import service_app
from eventkit.settings import KernelSettings
from fastapi import FastAPI

from jingmin_visits.adapters import survey_tokens
from jingmin_visits.adapters.contacts import OwnerContacts
from jingmin_visits.application.handlers import CallbackCommands
from jingmin_visits.application.outreach import OutreachCommands
from jingmin_visits.entrypoints.routes import router
from jingmin_visits.entrypoints.survey_page import router as survey_router

DATABASE = "jingmin_visits"


@asynccontextmanager
async def _resources(app: FastAPI) -> AsyncIterator[None]:
    app.state.outreach = OutreachCommands(app.state.store)
    app.state.survey_key = survey_tokens.signing_key(app.state.settings)
    app.state.contacts = OwnerContacts(app.state.settings)
    try:
        yield
    finally:
        await app.state.contacts.aclose()


def create_app(settings: KernelSettings | None = None, dsn: str | None = None) -> FastAPI:
    app = service_app(
        "visits",
        title="Jingmin visits (走访/回访)",
        database=DATABASE,
        router=router,
        commands=CallbackCommands,
        settings=settings,
        dsn=dsn,
        resources=_resources,
    )
    app.include_router(survey_router)  # public: /s/{token}, outside the /v1 API
    return app
