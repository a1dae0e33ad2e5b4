"""The platform in one process for simulator tests: every service's API on a fresh database,
and a bridge that hands each outbox row to the consumers that subscribe to its topic, as the
relay and the broker would (imported as `simkit`: pytest puts this folder on sys.path)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import ConsumerRecord
from eventkit.chain import chain_key
from eventkit.consumer import IdempotentConsumer
from eventkit.kafka import json_bytes, record_headers
from eventkit.personal import Vault
from eventkit.settings import KernelSettings
from eventkit.testing import DatabaseFactory

INTAKE_TOPIC = "intake.case.events.v1"
CALLBACK_TOPIC = "visits.callback.events.v1"
VISIT_TOPIC = "visits.visit.events.v1"
COMPLAINT_TOPICS = ("complaints.complaint.events.v1", "complaints.supervision.events.v1")


class DeadLetters:
    """Stands in for the dead-letter producer; keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, topic: str, **kw: Any) -> Any:
        self.sent.append((topic, kw))

        async def acked() -> None:
            return None

        return acked()


@dataclass
class Route:
    source: str  # service whose outbox feeds it
    topics: tuple[str, ...]
    consumer: IdempotentConsumer
    seen: set[int] = field(default_factory=set)
    high: int = 0


@dataclass
class Platform:
    settings: KernelSettings
    clients: dict[str, httpx.AsyncClient]
    pools: dict[str, asyncpg.Pool]
    dsns: dict[str, str]
    routes: list[Route]
    dead: DeadLetters
    applied: int = 0

    async def pump(self) -> int:
        """Hand every outbox row not yet seen to each consumer of its topic."""
        moved = 0
        for route in self.routes:
            # Ids are handed out before commit, so a row may appear below the highest id
            # seen: look a little way back, and skip what was handed over already.
            rows = await self.pools[route.source].fetch(
                """SELECT id, topic, aggregate_id, payload::text AS p, headers::text AS h
                   FROM outbox WHERE topic = ANY($1::text[]) AND id > $2 ORDER BY id""",
                list(route.topics),
                route.high - 500,
            )
            for row in rows:
                if row["id"] in route.seen:
                    continue
                route.seen.add(row["id"])
                route.high = max(route.high, row["id"])
                value = json_bytes(json.loads(row["p"]))
                key = row["aggregate_id"].encode()
                record = ConsumerRecord(
                    topic=row["topic"], partition=0, offset=row["id"], timestamp=0,
                    timestamp_type=0, key=key, value=value, checksum=None,
                    serialized_key_size=len(key), serialized_value_size=len(value),
                    headers=record_headers(json.loads(row["h"])),
                )  # fmt: skip
                await route.consumer.handle(record)
                moved += 1
        self.applied += moved
        return moved

    async def bridge(self, stop: asyncio.Event, interval: float = 0.05) -> None:
        while not stop.is_set():
            moved = await self.pump()
            if not moved:
                try:
                    await asyncio.wait_for(stop.wait(), interval)
                except TimeoutError:
                    pass


@asynccontextmanager
async def platform(fresh_database: DatabaseFactory, home: Path) -> AsyncIterator[Platform]:
    from jingmin_complaints.application.consumers import SourceHandler
    from jingmin_complaints.application.consumers import build_consumer as complaints_consumer
    from jingmin_complaints.entrypoints.app import create_app as complaints_app
    from jingmin_complaints.service import SERVICE as COMPLAINTS
    from jingmin_intake.application.visits_consumer import build_consumer as intake_consumer
    from jingmin_intake.entrypoints.app import create_app as intake_app
    from jingmin_intake.service import SERVICE as INTAKE
    from jingmin_visits.application.complaints_consumer import (
        build_consumer as visits_from_complaints,
    )
    from jingmin_visits.application.intake_consumer import build_consumer as visits_from_intake
    from jingmin_visits.entrypoints.app import create_app as visits_app
    from jingmin_visits.service import SERVICE as VISITS

    settings = KernelSettings(
        jingmin_home=home,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        kafka_bootstrap_servers="127.0.0.1:9",
    )
    specs = {"intake": INTAKE, "visits": VISITS, "complaints": COMPLAINTS}
    factories = {"intake": intake_app, "visits": visits_app, "complaints": complaints_app}
    dsns = {name: await fresh_database([spec.migrations]) for name, spec in specs.items()}
    async with AsyncExitStack() as stack:
        pools: dict[str, asyncpg.Pool] = {}
        for name, dsn in dsns.items():
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=6)
            stack.push_async_callback(pool.close)
            pools[name] = pool
        clients: dict[str, httpx.AsyncClient] = {}
        for name, factory in factories.items():
            app = factory(settings, dsn=dsns[name])
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=f"http://{name}.test", timeout=60
            )
            await stack.enter_async_context(client)
            clients[name] = client
        dead = DeadLetters()
        fast = {"retry_delay": 0.01}
        routes = [
            Route("intake", (INTAKE_TOPIC,), visits_from_intake(pools["visits"], dead, **fast)),
            Route("complaints", COMPLAINT_TOPICS,
                  visits_from_complaints(pools["visits"], dead, **fast)),
            Route("visits", (VISIT_TOPIC,),
                  intake_consumer(pools["intake"], dead, settings, **fast)),
            Route("intake", (INTAKE_TOPIC,),
                  complaints_consumer(pools["complaints"], dead,
                                      SourceHandler(chain_key(settings),
                                                    Vault(pools["complaints"], settings)),
                                      **fast)),
            Route("visits", (CALLBACK_TOPIC,),
                  complaints_consumer(pools["complaints"], dead,
                                      SourceHandler(chain_key(settings),
                                                    Vault(pools["complaints"], settings)),
                                      **fast)),
        ]  # fmt: skip
        yield Platform(settings, clients, pools, dsns, routes, dead)
