"""Worker loop: run the faust processors as supervised child processes.

`jingmin worker --service metrics` runs this loop; each processor is its own OS process
(faust owns its event loop and a consumer thread), restarted if it dies, stopped with the
worker. More processors, here or on other machines, share the partitions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from eventkit import topics
from eventkit.devstack import service_topics
from eventkit.service import load_services
from eventkit.worker import WorkerContext

from jingmin_metrics.settings import MetricsSettings, metrics_settings

log = logging.getLogger(__name__)


async def ensure_topics(settings: MetricsSettings) -> None:
    """Every domain topic the processors subscribe to must exist before they join."""
    wanted = [t for spec in load_services().values() for t in service_topics(spec)]
    await topics.ensure_topics(settings.kafka_bootstrap_servers, wanted)


def processor_argv() -> list[str]:
    return [sys.executable, "-m", "jingmin_metrics.stream", "worker", "-l", "info"]


def processor_env(settings: MetricsSettings, index: int) -> dict[str, str]:
    env = dict(os.environ)
    env["METRICS_FAUST_DATADIR"] = str(settings.metrics_faust_datadir / f"p{index}")
    port = settings.metrics_processor_metrics_port
    env["METRICS_PROCESSOR_PORT"] = str(port + index) if port else "0"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


async def supervise(index: int, settings: MetricsSettings, stop: asyncio.Event) -> None:
    """Keep processor `index` running until stopped; a crash is logged and restarted."""
    while not stop.is_set():
        proc = await asyncio.create_subprocess_exec(
            *processor_argv(), env=processor_env(settings, index)
        )
        log.info("metrics processor %d started (pid %d)", index, proc.pid)
        waiter = asyncio.create_task(proc.wait())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(waiter, 30)
            except TimeoutError:
                proc.kill()
                await waiter
        stopper.cancel()
        if not stop.is_set():
            log.error("metrics processor %d exited with %s; restarting", index, proc.returncode)
            try:
                await asyncio.wait_for(stop.wait(), 2.0)
            except TimeoutError:
                pass


async def run(ctx: WorkerContext) -> None:
    settings = metrics_settings()
    while not ctx.stop.is_set():
        try:
            await ensure_topics(settings)
            break
        except Exception:
            log.exception("cannot create the topics yet; retrying")
            try:
                await asyncio.wait_for(ctx.stop.wait(), 5.0)
            except TimeoutError:
                pass
    await asyncio.gather(
        *(supervise(i, settings, ctx.stop) for i in range(settings.metrics_processors))
    )
