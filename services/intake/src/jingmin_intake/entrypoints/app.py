"""Composition root of the intake API process."""

from __future__ import annotations

from eventkit.app import service_app
from eventkit.settings import KernelSettings
from fastapi import FastAPI

from jingmin_intake.application.handlers import CaseCommands
from jingmin_intake.entrypoints.routes import router

DATABASE = "jingmin_intake"


def create_app(settings: KernelSettings | None = None, dsn: str | None = None) -> FastAPI:
    return service_app(
        "intake",
        title="Jingmin intake (受理)",
        database=DATABASE,
        router=router,
        commands=CaseCommands,
        settings=settings,
        dsn=dsn,
    )
