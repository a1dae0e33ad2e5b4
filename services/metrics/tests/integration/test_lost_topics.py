"""A processor that lives through the loss of its broker makes its own topics again.

Made with its own partition count, even when the broker made one first on a client's
request (Tansu does, with its default count).

The runbook refills a lost cluster with the services' topics and `jingmin replay`; nobody
else creates the processors' regroup topic. Without it every send to it waited and the
group never caught up (`make chaos` broker-restart)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from eventkit import devstack, topics
from eventkit.service import load_services
from eventkit.testing import DatabaseFactory, wait_for
from jingmin_metrics.service import SERVICE, processor_topics
from metricskit import ProcessorProcess

pytestmark = pytest.mark.integration


async def _start_on(port: int, log: Path, within: float = 120.0) -> devstack.Endpoint:
    """A new, empty Tansu on `port` (a killed one leaves it busy for a while)."""
    t0 = time.monotonic()
    while not devstack.port_is_free(port):
        assert time.monotonic() - t0 < within, f"port {port} still busy"
        await asyncio.sleep(0.5)
    return await asyncio.to_thread(devstack.start_tansu, port, log)


async def _named_by_a_client(bootstrap: str, names: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for name in names:
            await asyncio.wait_for(producer.partitions_for(name), 15)
    finally:
        await producer.stop()


async def test_a_processor_makes_its_topics_again_on_a_new_empty_broker(
    tmp_path: Path, fresh_database: DatabaseFactory
) -> None:
    dsn = await fresh_database([SERVICE.migrations])
    port = devstack.free_port()
    broker = devstack.start_tansu(port, log_path=tmp_path / "tansu-1.log")
    services = [t for s in load_services().values() for t in devstack.service_topics(s)]
    await topics.ensure_topics(broker.address, services)
    app_id = f"metrics-lost-{uuid.uuid4().hex[:8]}"
    own = [t.name for t in processor_topics(app_id, 12)]

    async def present() -> bool:
        have = await topics.list_topics(broker.address)
        return all(have.get(name) == 12 for name in own)

    env = {"METRICS_DATABASE_DSN": dsn}
    proc = ProcessorProcess(broker.address, app_id, tmp_path, "survivor", env).start()
    try:
        await wait_for(present, 60, 1.0, "the processor did not create its topics")
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGKILL)
        broker.stop()
        broker = await _start_on(port, tmp_path / "tansu-2.log")
        await topics.ensure_topics(broker.address, services)  # the runbook's first step
        # The processor's own clients ask for the regroup topic as soon as the broker is
        # back, and Tansu makes a topic on the first metadata request naming it, with its
        # default partition count. Whether that comes before the processor's 10 s check is a
        # race, so the test makes it so: ask first, as a client would.
        await _named_by_a_client(broker.address, own)
        have = await topics.list_topics(broker.address)
        assert all(have.get(name) not in (None, 12) for name in own), have
        await wait_for(present, 60, 1.0, "the processor did not make its topics again")
    finally:
        proc.stop()
        broker.stop()
