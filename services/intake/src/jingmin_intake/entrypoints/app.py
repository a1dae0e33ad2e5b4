"""Composition root of the intake API process."""

from __future__ import annotations

from eventkit.app import service_app
from eventkit.contacts import contact_router
from eventkit.settings import KernelSettings
from fastapi import APIRouter, FastAPI

from jingmin_intake.adapters.contacts import case_contact
from jingmin_intake.application.handlers import CaseCommands
from jingmin_intake.entrypoints import units
from jingmin_intake.entrypoints.routes import router

DATABASE = "jingmin_intake"


def create_app(settings: KernelSettings | None = None, dsn: str | None = None) -> FastAPI:
    api = APIRouter()
    api.include_router(router)
    api.include_router(units.router)
    # GET /internal/v1/contacts/{case_id} for other services (visits calling back), and the
    # audit of those reads at GET /v1/contact-reads.
    api.include_router(contact_router(case_contact, noun="case"))
    return service_app(
        "intake",
        title="Jingmin intake (受理)",
        database=DATABASE,
        router=api,
        commands=CaseCommands,
        settings=settings,
        dsn=dsn,
    )
