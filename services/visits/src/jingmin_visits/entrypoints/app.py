"""Composition root of the visits API process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from eventkit.app import service_app
from eventkit.settings import KernelSettings
from fastapi import FastAPI

from jingmin_visits.adapters import survey_tokens
from jingmin_visits.adapters.contacts import OwnerContacts
from jingmin_visits.application.handlers import CallbackCommands
from jingmin_visits.application.outreach import OutreachCommands
from jingmin_visits.application.surveys import gateway_for
from jingmin_visits.application.wave_sms import WaveSms
from jingmin_visits.entrypoints.routes import router
from jingmin_visits.entrypoints.survey_page import router as survey_router
from jingmin_visits.settings import VisitsSettings

DATABASE = "jingmin_visits"


@asynccontextmanager
async def _resources(app: FastAPI) -> AsyncIterator[None]:
    app.state.outreach = OutreachCommands(app.state.store)
    app.state.survey_key = survey_tokens.signing_key(app.state.settings)
    app.state.contacts = OwnerContacts(app.state.settings)
    visits = VisitsSettings()
    http = httpx.AsyncClient(timeout=visits.sms_timeout_seconds)
    # A supervisor's "send the wave's invitations" runs in this process, through the same
    # gateway the worker's callback dispatcher uses.
    app.state.wave_sms = WaveSms(
        app.state.commands,
        gateway_for(visits, app.state.pool, http),
        app.state.survey_key,
        public_base_url=visits.public_base_url,
        ttl=timedelta(hours=visits.survey_ttl_hours),
        signature=visits.sms_signature,
    )
    try:
        yield
    finally:
        await http.aclose()
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
