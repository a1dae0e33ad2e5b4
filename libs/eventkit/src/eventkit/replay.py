"""Republish every stored event to Kafka, to rebuild a lost broker or feed a new subscriber."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from eventkit import kafka
from eventkit.db import create_pool
from eventkit.service import ServiceSpec
from eventkit.settings import KernelSettings, service_dsn
from eventkit.store import START, PostgresEventStore

log = logging.getLogger(__name__)


async def replay_service(
    spec: ServiceSpec,
    settings: KernelSettings,
    bootstrap: str,
    *,
    batch: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Publish every event of one service in store order; return how many messages went out.

    The envelopes are rebuilt by the same mapping the writer used, with the stored event id
    as ce_id, so consumers that already saw a message drop the replayed copy.
    """
    pool = await create_pool(service_dsn(settings, spec.database))
    producer = kafka.producer(settings, bootstrap)
    await producer.start()
    sent = 0
    try:
        store = PostgresEventStore(pool)
        # Everything committed before now must go out, even events hidden for a while behind
        # a transaction that is still open: stop only at an empty page read after every
        # transaction older than the start has finished.
        horizon = await pool.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
        position = START
        while True:
            caught_up = await pool.fetchval(
                "SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::text::xid8", horizon
            )
            events = await store.read_all(position, limit=batch)
            if not events:
                if caught_up:
                    break
                await asyncio.sleep(0.1)
                continue
            futures = []
            for event in events:
                for message in spec.to_messages(event):
                    futures.append(
                        await producer.send(
                            message.topic,
                            value=kafka.json_bytes(message.payload),
                            key=message.aggregate_id.encode(),
                            headers=kafka.record_headers(message.headers),
                        )
                    )
            await asyncio.gather(*futures)
            sent += len(futures)
            position = events[-1].position
            if progress:
                progress(sent)
    finally:
        await producer.stop()
        await pool.close()
    log.info("replayed %d messages for %s", sent, spec.name)
    return sent


async def replay_all(
    specs: Mapping[str, ServiceSpec], settings: KernelSettings, bootstrap: str
) -> dict[str, int]:
    return {name: await replay_service(spec, settings, bootstrap) for name, spec in specs.items()}
