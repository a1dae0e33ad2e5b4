"""Outbox relay: publishes committed outbox rows to Kafka, retrying, never losing one."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from eventkit import kafka
from eventkit.settings import service_dsn
from eventkit.telemetry import (
    OUTBOX_FAILURES,
    OUTBOX_OLDEST_PENDING_SECONDS,
    OUTBOX_PENDING,
    OUTBOX_PUBLISHED,
    kafka_span,
)

log = logging.getLogger(__name__)


@dataclass
class RelayStats:
    published: int = 0
    failures: int = 0


class OutboxRelay:
    """Publishes pending rows in id order, then marks them; a crash in between re-sends.

    Order per aggregate holds because one relay per database is active (an advisory lock
    elects it), rows are read in id order, and a row of aggregate A is only written after
    A's previous version committed (optimistic concurrency), so its id is larger.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        make_producer: Callable[[], AIOKafkaProducer],
        *,
        service: str,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        max_backoff: float = 10.0,
        keep_published_seconds: float = 86400.0,
    ) -> None:
        self.pool = pool
        self.make_producer = make_producer
        self.service = service
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.keep_published_seconds = keep_published_seconds
        self.stats = RelayStats()
        self._producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self.make_producer()
            try:
                await producer.start()
            except BaseException:
                await producer.stop()  # a half-started client still holds sockets and tasks
                raise
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception:  # a broken producer may fail to stop; we only want it gone
                log.warning("producer stop failed", exc_info=True)

    async def publish_batch(self) -> int:
        """Publish up to one batch; return how many rows were published."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT id, event_id, aggregate_id, topic, payload::text AS payload,
                          headers::text AS headers
                   FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1""",
                self.batch_size,
            )
        if not rows:
            return 0
        try:
            # Inside the try: an unreachable broker is a failed attempt like any other.
            producer = await self._ensure_producer()
            futures = []
            for row in rows:
                headers: dict[str, str] = json.loads(row["headers"])
                with kafka_span(
                    "produce", row["topic"], row["event_id"], headers.get("ce_traceparent")
                ):
                    futures.append(
                        await producer.send(
                            row["topic"],
                            value=row["payload"].encode(),
                            key=row["aggregate_id"].encode(),
                            headers=kafka.record_headers(headers),
                        )
                    )
            await asyncio.gather(*futures)
        except Exception as exc:
            self.stats.failures += 1
            OUTBOX_FAILURES.labels(self.service).inc()
            async with self.pool.acquire() as conn:
                await conn.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2 "
                    "WHERE id = ANY($1::bigint[])",
                    [r["id"] for r in rows],
                    f"{type(exc).__name__}: {exc}"[:1000],
                )
            await self._drop_producer()
            raise
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE outbox SET published_at = clock_timestamp(), attempts = attempts + 1 "
                "WHERE id = ANY($1::bigint[])",
                [r["id"] for r in rows],
            )
        self.stats.published += len(rows)
        OUTBOX_PUBLISHED.labels(self.service).inc(len(rows))
        return len(rows)

    async def drain(self) -> int:
        """Publish until nothing is pending (used by tests and by replay-after-restore)."""
        total = 0
        while n := await self.publish_batch():
            total += n
        return total

    async def observe(self) -> None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                """SELECT count(*) AS n,
                          coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)
                              AS age
                   FROM outbox WHERE published_at IS NULL"""
            )
            # The relay is the one process every database always has, so it also keeps the
            # kernel tables small. Published rows are copies of stored events, and an
            # Idempotency-Key only has to outlive a client's retries: keep each a day.
            await conn.execute(
                "DELETE FROM outbox WHERE published_at < clock_timestamp() - make_interval("
                "secs => $1)",
                self.keep_published_seconds,
            )
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE created_at < clock_timestamp() - "
                "make_interval(secs => $1)",
                self.keep_published_seconds,
            )
        OUTBOX_PENDING.labels(self.service).set(row["n"])
        OUTBOX_OLDEST_PENDING_SECONDS.labels(self.service).set(float(row["age"]))

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Lead the relay for this database until `stop` is set.

        Survives a database restart: the leadership lock dies with the session that held it,
        so on losing the connection the relay stands for election again instead of
        publishing without the lock (which would let a second relay interleave with it).
        """
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self._lead(stop)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("relay lost its database session (%s); standing again", exc)
                await self._drop_producer()
                if await _wait(stop, 1.0):
                    return

    async def _lead(self, stop: asyncio.Event) -> None:
        listener: asyncpg.Connection = await self.pool.acquire()
        try:
            while not await listener.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK):
                log.info("another relay leads this database; standing by")
                if await _wait(stop, 2.0):
                    return
            await listener.add_listener("outbox", self._notified)
            log.info("relay leading", extra={"service": self.service})
            backoff = 0.2
            last_observed = 0.0
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                self._wake.clear()
                if listener.is_closed():  # no round trip: asyncpg saw the socket close
                    raise ConnectionError("leadership session closed")
                try:
                    n = await self.publish_batch()
                    if loop.time() - last_observed > 1.0:
                        # Also proves the leadership session is still alive.
                        await listener.fetchval("SELECT 1")
                        await self.observe()
                        last_observed = loop.time()
                    backoff = 0.2
                except Exception:
                    if listener.is_closed():
                        raise ConnectionError("leadership session closed") from None
                    log.warning("publish failed; retrying in %.1fs", backoff, exc_info=True)
                    if await _wait(stop, backoff):
                        break
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
                if n < self.batch_size:
                    await _wait_any(stop, self._wake, self.poll_interval)
        finally:
            try:
                if not listener.is_closed():
                    await listener.remove_listener("outbox", self._notified)
                    # Pools skip the session reset (see db.create_pool): hand leadership back.
                    await listener.execute("SELECT pg_advisory_unlock_all()")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pass  # a dead session has released its lock already
            finally:
                await self.pool.release(listener)
                await self._drop_producer()


LEADER_LOCK = zlib.crc32(b"jingmin-outbox-relay")


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
        return True
    except TimeoutError:
        return False


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def run_relay(spec: Any, settings: Any) -> None:
    """Entry point of `jingmin relay --service X`: serve metrics and relay until signalled."""
    import signal

    from prometheus_client import start_http_server

    from eventkit.db import create_pool

    port = int(os.environ.get(f"{spec.name.upper()}_RELAY_METRICS_PORT", spec.default_port + 100))
    start_http_server(port, addr=settings.metrics_bind_address)
    pool = await create_pool(service_dsn(settings, spec.database))
    relay = OutboxRelay(
        pool,
        lambda: kafka.producer(settings),
        service=spec.name,
        batch_size=settings.relay_batch_size,
        poll_interval=settings.relay_poll_interval_seconds,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await relay.run(stop)
    finally:
        await pool.close()
