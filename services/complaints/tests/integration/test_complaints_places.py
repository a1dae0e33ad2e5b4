"""Choosing a county and station by name: intake's register into complaints' own `unit_names`
(through the consumer, and through the worker on a real broker), the public look-up naming
them, and a citizen in Chromium picking 省 → 市 → 县/区 → 派出所 by name, with script and
without."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from eventkit import kafka, unitnames
from eventkit.consumer import IdempotentConsumer
from eventkit.contracts import SchemaRegistry
from eventkit.service import TopicSpec
from eventkit.settings import KernelSettings
from eventkit.testing import consumer_record, serving, unit_event, wait_for
from eventkit.topics import ensure_topics
from eventkit.worker import WorkerContext
from jingmin_complaints.adapters import unit_names
from jingmin_complaints.application.receipts import receipt_hash
from jingmin_complaints.entrypoints.app import create_app
from jingmin_complaints.integration.messages import DEAD_LETTER_TOPIC
from jingmin_complaints.service import SERVICE
from playwright.async_api import Browser, Page

if TYPE_CHECKING:
    from conftest import FakeProducer

pytestmark = pytest.mark.integration

BUREAU = "330602"
SOUTH, NORTH, EAST, BEAT = "330602001", "330602002", "330602003", "33060200101"
REGISTER = [
    unit_event("Registered", SOUTH, 1, "城南派出所"),
    unit_event("Registered", NORTH, 1, "城北派出所"),
    unit_event("Registered", EAST, 1, "东湖派出所"),
    unit_event("Registered", BEAT, 1, "府山警务室"),
    unit_event("Renamed", SOUTH, 2, "城南中心派出所"),
    unit_event("Retired", NORTH, 2),
]
ACCOUNT = "在派出所办理居住证时民警态度恶劣，拒绝解释所需材料"


def consumer(pool: asyncpg.Pool, dead: FakeProducer, registry: SchemaRegistry) -> Any:
    return IdempotentConsumer(
        pool,
        name=unit_names.CONSUMER_NAME,
        service="complaints",
        handler=unitnames.apply,
        producer=cast(AIOKafkaProducer, dead),
        dead_letter_topic=DEAD_LETTER_TOPIC,
        validate=registry.validate,
    )


async def deliver(c: IdempotentConsumer, events: list[Any]) -> list[str]:
    return [await c.handle(consumer_record(e, unitnames.TOPIC, i)) for i, e in enumerate(events)]


async def stations(client: httpx.AsyncClient, county: str = BUREAU) -> list[tuple[str, str]]:
    r = await client.get(f"/v1/public/divisions/{county}/stations")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "public, max-age=300"
    assert "set-cookie" not in r.headers
    return [(s["code"], s["name"]) for s in r.json()["stations"]]


async def test_register_events_name_the_countys_stations_in_service(
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    dead_letters: FakeProducer,
    registry: SchemaRegistry,
) -> None:
    assert await stations(client) == []
    c = consumer(db, dead_letters, registry)
    assert await deliver(c, [*REGISTER, REGISTER[0]]) == ["applied"] * 6 + ["duplicate"]
    # Renamed kept, retired gone, beats are not stations; another county sees none of them.
    assert await stations(client) == [(SOUTH, "城南中心派出所"), (EAST, "东湖派出所")]
    assert await stations(client, "330603") == []
    body = (await client.get(f"/v1/public/divisions/{BUREAU}/stations")).json()
    assert (body["county"], body["name"]) == (BUREAU, "越城区")

    # Poison on the register's topic goes to complaints' dead letters; the next event applies.
    broken = replace(REGISTER[0], id="broken", data={**REGISTER[0].data, "name": 12345})
    later = unit_event("Renamed", EAST, 2, "东湖中心派出所")
    assert await deliver(c, [broken, later]) == ["dead_lettered", "applied"]
    assert [topic for topic, _v, _h in dead_letters.sent] == [DEAD_LETTER_TOPIC]
    assert (EAST, "东湖中心派出所") in await stations(client)


async def test_the_form_offers_register_stations_and_accepts_only_those(
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    dead_letters: FakeProducer,
    registry: SchemaRegistry,
) -> None:
    await deliver(consumer(db, dead_letters, registry), REGISTER)
    page = await client.get("/complain", params={"county": BUREAU})
    assert page.status_code == 200
    assert "城南中心派出所" in page.text and "城北派出所" not in page.text
    assert "浙江省 绍兴市 越城区" in page.text
    # Without script: each 下一步 narrows the choice by name.
    step = await client.get("/complain", params={"province": "33", "city": "3306"})
    assert '<option value="330602">越城区</option>' in step.text
    stale = await client.get("/complain", params={"province": "11", "city": "3306"})
    assert "越城区" not in stale.text  # a city of another province is dropped
    import re

    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token is not None
    form = {
        "token": token.group(1),
        "bureau": BUREAU,
        "unit": NORTH,
        "category": "attitude",
        "account": ACCOUNT,
        "phone": "13912340000",
    }
    retired = await client.post("/complain", data=form)
    assert retired.status_code == 422 and "请从列表中选择被投诉单位" in retired.text
    assert await db.fetchval("SELECT count(*) FROM complaints") == 0
    filed = await client.post("/complain", data={**form, "unit": SOUTH})
    assert filed.status_code == 201, filed.text
    assert await db.fetchval("SELECT subject_unit FROM complaints") == SOUTH


async def test_the_worker_follows_the_register_topic_into_the_form(
    settings: KernelSettings,
    dsn: str,
    db: asyncpg.Pool,
    client: httpx.AsyncClient,
    kafka_bootstrap: str,
) -> None:
    # As `jingmin worker --service complaints` runs it: its loop from the service spec.
    assert "jingmin_complaints.adapters.unit_names:run" in SERVICE.workers
    live = settings.model_copy(update={"kafka_bootstrap_servers": kafka_bootstrap})
    await ensure_topics(kafka_bootstrap, [TopicSpec(unitnames.TOPIC, partitions=12)])
    await ensure_topics(kafka_bootstrap, SERVICE.topics)
    producer = kafka.producer(live, kafka_bootstrap)
    await producer.start()
    try:
        for e in REGISTER:
            await producer.send_and_wait(
                unitnames.TOPIC, e.kafka_value(), key=e.key.encode(), headers=e.kafka_headers()
            )
    finally:
        await producer.stop()
    stop = asyncio.Event()
    task = asyncio.create_task(unit_names.run(WorkerContext(live, SERVICE, db, stop), 0.5))
    try:

        async def named() -> bool:
            return await stations(client) == [(SOUTH, "城南中心派出所"), (EAST, "东湖派出所")]

        await wait_for(named, timeout=60, interval=0.5)  # type: ignore[arg-type]
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


# ---- a citizen in Chromium -----------------------------------------------------------------


@pytest.fixture
async def served(
    settings: KernelSettings,
    dsn: str,
    db: asyncpg.Pool,
    registry: SchemaRegistry,
    dead_letters: FakeProducer,
) -> AsyncIterator[str]:
    """The complaints API on a real port with the register applied; no policy names units."""
    await deliver(consumer(db, dead_letters, registry), REGISTER)
    async with serving(create_app(settings, dsn=dsn)) as base:
        yield base


async def _fill_and_submit(page: Page) -> str:
    await page.select_option("#category", "attitude")
    await page.fill("#account", ACCOUNT)
    await page.fill("#phone", "13912340000")
    await page.click("#complaint button[type=submit]")
    await page.wait_for_selector("#receipt-code")
    return (await page.inner_text("#receipt-code")).strip()


async def _stored(db: asyncpg.Pool, code: str) -> tuple[str, str, str]:
    row = await db.fetchrow(
        "SELECT bureau, subject_unit, station FROM complaints WHERE receipt_hash = $1",
        receipt_hash(code),
    )
    assert row is not None
    return row["bureau"], row["subject_unit"], row["station"]


async def test_a_citizen_chooses_county_and_station_by_name_in_chromium(
    browser: Browser, served: str, db: asyncpg.Pool
) -> None:
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, locale="zh-CN"
    )
    page = await context.new_page()
    looked_up: list[str] = []
    page.on("request", lambda r: looked_up.append(r.url) if "/v1/public/" in r.url else None)
    problems: list[str] = []  # the browser asks for /favicon.ico on its own: not ours
    page.on(
        "response",
        lambda r: problems.append(r.url) if r.status >= 400 and "favicon" not in r.url else None,
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        response = await page.goto(f"{served}/complain")
        assert response is not None and response.status == 200
        assert "行政区划代码" not in await page.content()
        # With script the chooser's 下一步 is not needed, so not shown.
        assert not await page.is_visible("#place button.next")
        await page.select_option("#province", label="浙江省")
        await page.wait_for_selector("#city option:text('绍兴市')", state="attached")
        await page.select_option("#city", label="绍兴市")
        await page.wait_for_selector("#county option:text('越城区')", state="attached")
        await page.select_option("#county", label="越城区")
        await page.wait_for_selector("#unit option:text('城南中心派出所')", state="attached")
        labels = await page.eval_on_selector_all("#unit option", "os => os.map(o => o.text)")
        assert labels == ["不清楚 / 县局机关", "城南中心派出所", "东湖派出所"]
        await page.select_option("#unit", label="东湖派出所")
        code = await _fill_and_submit(page)
    finally:
        await context.close()
    assert await _stored(db, code) == (BUREAU, EAST, EAST)
    assert len(looked_up) == 3 and not problems, (looked_up, problems)


async def test_without_script_the_same_choice_takes_a_step_per_level(
    browser: Browser, served: str, db: asyncpg.Pool
) -> None:
    context = await browser.new_context(java_script_enabled=False, locale="zh-CN")
    page = await context.new_page()
    try:
        await page.goto(f"{served}/complain")
        for select, label in (("#province", "浙江省"), ("#city", "绍兴市"), ("#county", "越城区")):
            await page.select_option(select, label=label)
            await page.click("#place button.next")
        assert "浙江省 绍兴市 越城区" in await page.inner_text("#place-chosen")
        # The station left at its default: the complaint concerns the bureau itself.
        assert await page.input_value("#unit") == ""
        code = await _fill_and_submit(page)
    finally:
        await context.close()
    assert await _stored(db, code) == (BUREAU, BUREAU, BUREAU + "000")
