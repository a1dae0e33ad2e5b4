"""Composition root of the visits API process."""

from __future__ import annotations

from eventkit.app import service_app
from eventkit.settings import KernelSettings
from fastapi import FastAPI

from jingmin_visits.application.handlers import CallbackCommands
from jingmin_visits.entrypoints.routes import router

DATABASE = "jingmin_visits"


def create_app(settings: KernelSettings | None = None, dsn: str | None = None) -> FastAPI:
    return service_app(
        "visits",
        title="Jingmin visits (走访/回访)",
        database=DATABASE,
        router=router,
        commands=CallbackCommands,
        settings=settings,
        dsn=dsn,
    )
