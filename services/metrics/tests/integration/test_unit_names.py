"""Unit names in metrics: the register's topic into `unit_names` once, in order; the exporter's
`jingmin_unit_info` and the JSON API's names beside the codes."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from eventkit import unitnames
from eventkit.auth import issue_token
from eventkit.consumer import IdempotentConsumer
from eventkit.contracts import SchemaRegistry
from eventkit.settings import KernelSettings
from eventkit.testing import DatabaseFactory, consumer_record, unit_event, wait_for
from jingmin_metrics.service import SERVICE
from prometheus_client.parser import text_string_to_metric_families
from support import snapshot_records, store_figures, synthetic_observations

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
BUREAU, STATION, BEAT = "330602", "330602001", "33060200101"


class NoDeadLetters:
    async def send(self, topic: str, **_: Any) -> Any:
        raise AssertionError(f"nothing should be dead-lettered (to {topic})")


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, bytes]]] = []

    async def send(self, topic: str, **kw: Any) -> Any:
        self.sent.append((topic, dict(kw.get("headers") or [])))
        delivered = asyncio.get_running_loop().create_future()  # as AIOKafkaProducer.send
        delivered.set_result(None)
        return delivered


def consumer(
    pool: asyncpg.Pool, name: str = "metrics.unit-names", dead: Any = None
) -> IdempotentConsumer:
    return IdempotentConsumer(
        pool,
        name=name,
        service="metrics",
        handler=unitnames.apply,
        producer=cast(AIOKafkaProducer, dead or NoDeadLetters()),
        dead_letter_topic="metrics.dlq.v1",
        validate=SchemaRegistry.load().validate,
    )


@pytest.fixture
async def dsn(fresh_database: DatabaseFactory) -> str:
    return await fresh_database([SERVICE.migrations])


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        yield p
    finally:
        await p.close()


REGISTER = [
    unit_event("Registered", STATION, 1, "城南派出所"),
    unit_event("Registered", STATION[:6] + "002", 1, "城北派出所"),
    unit_event("Registered", BEAT, 1, "府山警务室"),
    unit_event("Renamed", STATION, 2, "城南中心派出所"),
    unit_event("Retired", STATION[:6] + "002", 2),
]


async def deliver(c: IdempotentConsumer, events: list[Any]) -> list[str]:
    topic = unitnames.TOPIC
    return [await c.handle(consumer_record(e, topic, i)) for i, e in enumerate(events)]


async def test_register_events_apply_once_and_a_replay_never_brings_back_an_old_name(
    pool: asyncpg.Pool,
) -> None:
    assert await deliver(consumer(pool), [*REGISTER, REGISTER[0]]) == ["applied"] * 5 + [
        "duplicate"
    ]
    # A consumer of another name (its tracking rows gone) reads the topic again from the
    # start: the stream versions keep the current names.
    assert await deliver(consumer(pool, "metrics.rebuilt"), REGISTER[:1]) == ["applied"]
    assert [(u.code, u.name, u.kind) for u in await unitnames.current(pool)] == [
        (STATION, "城南中心派出所", "station"),
        (BEAT, "府山警务室", "beat"),
    ]


async def test_poison_on_the_register_topic_is_dead_lettered_and_the_next_event_applies(
    pool: asyncpg.Pool,
) -> None:
    # tests/hostile/test_dead_letters.py covers the workers it runs on the dev broker; this
    # worker keeps metrics' own database, so its poison is covered here, at its consumer.
    dead = DeadLetters()
    good = REGISTER[0]
    broken = replace(good, id="broken", data={**good.data, "name": 12345})
    unknown = replace(good, id="unknown", type="jingmin.intake.NoSuchEventEver.v1")
    assert await deliver(consumer(pool, dead=dead), [broken, unknown, good]) == [
        "dead_lettered",
        "dead_lettered",
        "applied",
    ]
    assert [topic for topic, _h in dead.sent] == ["metrics.dlq.v1"] * 2
    assert all(h.get("dlq_reason") for _t, h in dead.sent), dead.sent
    assert [u.name for u in await unitnames.current(pool)] == ["城南派出所"]


@pytest.fixture
async def client(dsn: str, pool: asyncpg.Pool, tmp_path: Any) -> AsyncIterator[httpx.AsyncClient]:
    from jingmin_metrics.entrypoints.app import create_app

    await store_figures(dsn, snapshot_records(synthetic_observations([BUREAU], 3, NOW, 2)))
    await deliver(consumer(pool), REGISTER)
    settings = KernelSettings(
        jingmin_home=tmp_path,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        kafka_bootstrap_servers="127.0.0.1:9",
    )
    app = create_app(settings, dsn=dsn)
    app.state.test_token = issue_token(
        settings, subject="u-commander", roles=["commander"], scopes=[BUREAU]
    )
    async with app.router.lifespan_context(app):
        await wait_for(lambda: app.state.reader.caught_up.is_set(), timeout=30)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://metrics.test") as c:
            c.headers["Authorization"] = f"Bearer {app.state.test_token}"
            yield c


async def test_exporter_names_counties_and_units_in_service(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    [info] = [f for f in text_string_to_metric_families(text) if f.name == "jingmin_unit_info"]
    assert {(s.labels["code"], s.labels["name"], s.labels["level"]) for s in info.samples} == {
        (BUREAU, "越城区", "county"),
        (STATION, "城南中心派出所", "station"),
        (BEAT, "府山警务室", "beat"),
    }
    assert all(s.value == 1 for s in info.samples)


async def test_api_names_the_scope_and_every_station_row(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/figures")).json()
    assert (body["scope"], body["name"]) == (BUREAU, "越城区")
    rows = (await client.get("/v1/figures/breakdown", params={"dimension": "station"})).json()
    names = {code: row["name"] for code, row in rows["figures"].items()}
    assert names[STATION] == "城南中心派出所"
    # Stations the register does not know (or retired ones) keep their code, name null.
    assert all(n is None for code, n in names.items() if code != STATION)
    station = (await client.get("/v1/figures", params={"scope": STATION})).json()
    assert station["name"] == "城南中心派出所"
