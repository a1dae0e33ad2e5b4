"""Composition root of the metrics API process: exporter (/metrics) and drill-down API.

Stateless: it follows the figure records in the metrics database (what the processors commit
with each batch), so replicas agree and a restart rebuilds the same figures. `/metrics`
serves the figures only (budgeted series); the process's own telemetry (HTTP latency, GC)
is on `/metrics/process`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from eventkit.app import service_app
from eventkit.settings import KernelSettings, kernel_settings, service_dsn
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from jingmin_metrics.adapters.figures_reader import FiguresReader
from jingmin_metrics.adapters.unit_names import Names
from jingmin_metrics.entrypoints.exporter import Figures, registry
from jingmin_metrics.entrypoints.routes import router

DATABASE = "jingmin_metrics"


def _reader(dsn: str) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def follow(app: FastAPI) -> AsyncIterator[None]:
        reader = FiguresReader(dsn)
        app.state.reader = reader
        app.state.figures = Figures(reader)
        app.state.figures_registry = registry(app.state.figures)
        stop = asyncio.Event()
        task = asyncio.create_task(reader.run(stop), name="figures-reader")
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(task, return_exceptions=True)

    return follow


def create_app(settings: KernelSettings | None = None, dsn: str | None = None) -> FastAPI:
    settings = settings or kernel_settings()
    dsn = dsn or service_dsn(settings, DATABASE)
    app = service_app(
        "metrics",
        title="Jingmin metrics (figures, exporter)",
        database=DATABASE,
        router=router,
        commands=lambda store, vault: None,
        settings=settings,
        dsn=dsn,
        resources=_reader(dsn),
    )
    # The kernel's /metrics serves the process registry; here /metrics is the figures.
    routes = app.router.routes
    for route in [r for r in routes if getattr(r, "path", None) == "/metrics"]:
        routes.remove(route)

    @app.get("/metrics", include_in_schema=False)
    async def figures_metrics() -> Response:
        # A small table, read per scrape: a rename shows on the next scrape.
        app.state.figures.names = await Names.load(app.state.pool)
        return Response(generate_latest(app.state.figures_registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/metrics/process", include_in_schema=False)
    async def process_metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app
