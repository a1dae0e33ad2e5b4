"""Composition root of the visits API process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from eventkit.app import service_app
from eventkit.settings import KernelSettings
from fastapi import FastAPI

from jingmin_visits.application.handlers import CallbackCommands
from jingmin_visits.application.outreach import OutreachCommands
from jingmin_visits.entrypoints.routes import router

DATABASE = "jingmin_visits"


@asynccontextmanager
async def _resources(app: FastAPI) -> AsyncIterator[None]:
    app.state.outreach = OutreachCommands(app.state.store)
    yield


def create_app(settings: KernelSettings | None = None, dsn: str | None = None) -> FastAPI:
    return service_app(
        "visits",
        title="Jingmin visits (走访/回访)",
        database=DATABASE,
        router=router,
        commands=CallbackCommands,
        settings=settings,
        dsn=dsn,
        resources=_resources,
    )
