"""Runs a service's background loops (sweepers, consumers) in one supervised process."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import asyncpg

from eventkit.service import ServiceSpec
from eventkit.settings import KernelSettings, service_dsn

log = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    settings: KernelSettings
    spec: ServiceSpec
    pool: asyncpg.Pool
    stop: asyncio.Event

    async def repeat(
        self, step: Callable[[], Coroutine[Any, Any, object]], interval: float, what: str
    ) -> None:
        """Run `step` every `interval` seconds until stopped.

        A failed step is logged and tried again next time: one bad pass must not kill the
        process (under `jingmin dev` that would stop the whole stack).
        """
        while not self.stop.is_set():
            try:
                result = await step()
                if isinstance(result, int) and result:
                    log.info("%s: %d recorded", what, result)
            except Exception:
                log.exception("%s failed; will retry", what)
            try:
                await asyncio.wait_for(self.stop.wait(), interval)
            except TimeoutError:
                pass


WorkerLoop = Callable[[WorkerContext], Coroutine[Any, Any, None]]


def load_loop(path: str) -> WorkerLoop:
    module, _, attr = path.partition(":")
    loop: WorkerLoop = getattr(importlib.import_module(module), attr)
    return loop


async def run_workers(spec: ServiceSpec, settings: KernelSettings) -> None:
    """Entry point of `jingmin worker --service X`: run every loop until signalled.

    A loop that crashes brings the process down (after the others stop) so the supervisor
    restarts it: a silently dead sweeper would be worse than a visible restart.
    """
    from prometheus_client import start_http_server

    from eventkit.db import create_pool
    from eventkit.telemetry import setup_telemetry

    setup_telemetry(f"{spec.name}-worker", settings)
    port = int(os.environ.get(f"{spec.name.upper()}_WORKER_METRICS_PORT", spec.default_port + 200))
    start_http_server(port, addr=settings.metrics_bind_address)
    pool = await create_pool(service_dsn(settings, spec.database))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ctx = WorkerContext(settings, spec, pool, stop)
    tasks: list[asyncio.Task[None]] = [
        asyncio.create_task(load_loop(p)(ctx), name=p) for p in spec.workers
    ]
    try:
        done, _ = await asyncio.wait(
            [*tasks, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            if task in done and (error := task.exception()) is not None:
                raise error
    finally:
        await pool.close()
