"""Republish every stored event to Kafka, to rebuild a lost broker or feed a new subscriber."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from eventkit import kafka
from eventkit.db import create_pool
from eventkit.relay import LEADER_LOCK
from eventkit.service import ServiceSpec
from eventkit.settings import KernelSettings, service_dsn
from eventkit.store import START, PostgresEventStore

log = logging.getLogger(__name__)


class RelayRunning(RuntimeError):
    """A relay leads the database that replay was asked to republish."""


async def replay_service(
    spec: ServiceSpec,
    settings: KernelSettings,
    bootstrap: str,
    *,
    batch: int = 5000,
    progress: Callable[[int], None] | None = None,
    force: bool = False,
) -> int:
    """Publish every event of one service in store order; return how many messages went out.

    The envelopes are rebuilt by the same mapping the writer used, with the stored event id
    as ce_id, so consumers that already saw a message drop the replayed copy.

    Replay takes the relay's leadership lock, so no relay publishes newer events ahead of
    the replayed ones; with a relay running it refuses unless `force` (then only the first
    occurrence order per aggregate may suffer; nothing is lost).
    """
    pool = await create_pool(service_dsn(settings, spec.database))
    lock = await pool.acquire()
    if not await lock.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK) and not force:
        await pool.release(lock)
        await pool.close()
        raise RelayRunning(
            f"a relay is publishing {spec.name}'s outbox: stop it before replaying "
            "(or force, accepting that newer events may overtake replayed ones)"
        )
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
        await lock.execute("SELECT pg_advisory_unlock_all()")
        await pool.release(lock)
        await pool.close()
    log.info("replayed %d messages for %s", sent, spec.name)
    return sent


async def replay_all(
    specs: Mapping[str, ServiceSpec],
    settings: KernelSettings,
    bootstrap: str,
    *,
    force: bool = False,
) -> dict[str, int]:
    return {
        name: await replay_service(spec, settings, bootstrap, force=force)
        for name, spec in specs.items()
    }
