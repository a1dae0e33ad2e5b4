"""Composition root of the metrics API process: exporter (/metrics) and drill-down API.

Stateless: it follows the compacted snapshot topic from its beginning, so replicas agree and
a restart rebuilds the same figures. `/metrics` serves the figures only (budgeted series);
the process's own telemetry (HTTP latency, GC) is on `/metrics/process`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from eventkit.app import service_app
from eventkit.settings import KernelSettings
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from jingmin_metrics.adapters.snapshot_reader import SnapshotReader
from jingmin_metrics.entrypoints.exporter import Figures, registry
from jingmin_metrics.entrypoints.routes import router

DATABASE = "jingmin_metrics"


@asynccontextmanager
async def _reader(app: FastAPI) -> AsyncIterator[None]:
    reader = SnapshotReader(app.state.settings.kafka_bootstrap_servers)
    app.state.reader = reader
    app.state.figures = Figures(reader)
    app.state.figures_registry = registry(app.state.figures)
    stop = asyncio.Event()
    task = asyncio.create_task(reader.run(stop), name="snapshot-reader")
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)


def create_app(settings: KernelSettings | None = None, dsn: str | None = None) -> FastAPI:
    app = service_app(
        "metrics",
        title="Jingmin metrics (figures, exporter)",
        database=DATABASE,
        router=router,
        commands=lambda store, vault: None,
        settings=settings,
        dsn=dsn,
        resources=_reader,
    )
    # The kernel's /metrics serves the process registry; here /metrics is the figures.
    routes = app.router.routes
    for route in [r for r in routes if getattr(r, "path", None) == "/metrics"]:
        routes.remove(route)

    @app.get("/metrics", include_in_schema=False)
    async def figures_metrics() -> Response:
        return Response(generate_latest(app.state.figures_registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/metrics/process", include_in_schema=False)
    async def process_metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app
