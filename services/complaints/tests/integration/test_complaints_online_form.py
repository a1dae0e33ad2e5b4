"""Online filing as a citizen does it: headless Chromium (no JavaScript), a receipt code, the
tracking page, and the CloudEvent on the topic; plus the form's defences over plain HTTP."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event
from eventkit import kafka
from eventkit.auth import issue_token
from eventkit.contracts import SchemaRegistry
from eventkit.relay import OutboxRelay
from eventkit.settings import KernelSettings
from eventkit.testing import serving
from eventkit.topics import ensure_topics
from fastapi import FastAPI
from jingmin_complaints.application.receipts import receipt_hash
from jingmin_complaints.entrypoints.app import create_app
from jingmin_complaints.entrypoints.ratelimit import RateLimiter
from jingmin_complaints.integration.messages import COMPLAINT_TOPIC
from jingmin_complaints.service import SERVICE
from playwright.async_api import Browser

if TYPE_CHECKING:
    from conftest import Stored

pytestmark = pytest.mark.integration

BUREAU, STATION = "330602", "330602001"
ACCOUNT = "11月20日上午在城关派出所户籍窗口办理身份证，民警推诿让我跑了三次"


@pytest.fixture
async def served(settings: KernelSettings, dsn: str) -> AsyncIterator[str]:
    """The complaints API on a real port, as a browser reaches it."""
    async with serving(create_app(settings, dsn=dsn)) as base:
        # The bureau lists its stations, so the form offers them by name.
        commander = issue_token(settings, subject="chief", roles=["commander"], scopes=[BUREAU])
        async with httpx.AsyncClient(base_url=base) as client:
            r = await client.put(
                f"/v1/policies/{BUREAU}",
                json={"units": {STATION: "城关派出所", BUREAU + "002": "府山派出所"}},
                headers={"Authorization": f"Bearer {commander}"},
            )
            assert r.status_code == 200, r.text
        yield base


async def read_topic(bootstrap: str, topic: str, key: str) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:
        await consumer.topics()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + 30
        while not found and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            found += [r for rs in batches.values() for r in rs if r.key == key.encode()]
    finally:
        await consumer.stop()
    return found


async def test_a_citizen_files_online_and_tracks_it_in_chromium(
    browser: Browser,
    served: str,
    db: asyncpg.Pool,
    kafka_bootstrap: str,
    registry: SchemaRegistry,
) -> None:
    # A phone-sized window with JavaScript off: the form must work without any script.
    context = await browser.new_context(
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        java_script_enabled=False,
        locale="zh-CN",
    )
    page = await context.new_page()
    try:
        response = await page.goto(f"{served}/complain?bureau={BUREAU}")
        assert response is not None and response.status == 200
        assert "default-src 'none'" in (await response.all_headers())["content-security-policy"]
        assert await page.title() == "网上投诉"
        await page.select_option("#unit", label="城关派出所")
        await page.select_option("#category", "service_delay")
        await page.fill("#account", ACCOUNT)
        await page.fill("#hoped_outcome", "希望一次告知所需材料")
        await page.fill("#name", "张桂芳")
        await page.fill("#phone", "13912340000")
        await page.click("button[type=submit]")
        await page.wait_for_selector("#receipt-code")
        assert await page.title() == "投诉已提交"
        code = (await page.inner_text("#receipt-code")).strip()
        assert re.fullmatch(r"[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4}", code)

        await page.click("#track-link")
        await page.wait_for_selector("#status")
        assert page.url.endswith(f"/track/{code}")
        assert await page.inner_text("#status") == "已收到，待受理"
        assert re.fullmatch(r"\d{4}年\d{2}月\d{2}日", await page.inner_text("#due"))
        tracking = await page.content()
        for personal in ("张桂芳", "13912340000", "城关派出所户籍窗口", "希望一次告知"):
            assert personal not in tracking
        # The code typed by hand, in lower case and without dashes, finds it too.
        await page.goto(f"{served}/track")
        await page.fill("#code", code.replace("-", "").lower())
        await page.click("button[type=submit]")
        await page.wait_for_selector("#status")
    finally:
        await context.close()

    row = await db.fetchrow(
        "SELECT complaint_id, channel, station FROM complaints WHERE receipt_hash = $1",
        receipt_hash(code),
    )
    assert row is not None and (row["channel"], row["station"]) == ("online", STATION)
    complaint_id = row["complaint_id"]

    # The relay publishes it: a binary-mode CloudEvent keyed by the complaint, valid per schema.
    await ensure_topics(kafka_bootstrap, SERVICE.topics)
    made: list[Any] = []

    def producer() -> Any:
        made.append(kafka.producer(KernelSettings(), kafka_bootstrap))
        return made[-1]

    relay = OutboxRelay(db, producer, service="complaints-form-test")
    try:
        assert await relay.drain() == 1
    finally:
        for p in made:
            await p.stop()
    [record] = await read_topic(kafka_bootstrap, COMPLAINT_TOPIC, complaint_id)
    event = from_binary_event(
        KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value or b"")
    )
    assert event.get_type() == "jingmin.complaints.ComplaintReceived.v1"
    assert event.get_extension("streamid") == complaint_id
    data = event.get_data()
    assert isinstance(data, dict)
    registry.validate(event.get_type(), data)
    assert (data["channel"], data["category"], data["subject_unit"]) == (
        "online",
        "service_delay",
        STATION,
    )
    assert "张桂芳" not in (record.value or b"").decode()


# ---- the form's defences, over plain HTTP ------------------------------------------------


async def form_session(client: httpx.AsyncClient, bureau: str = BUREAU) -> dict[str, str]:
    page = await client.get("/complain", params={"bureau": bureau})
    assert page.status_code == 200
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token is not None
    return {
        "token": token.group(1),
        "bureau": bureau,
        "unit": "",
        "category": "attitude",
        "account": ACCOUNT,
        "name": "",
        "phone": "13912340000",
    }


async def test_the_form_refuses_forgery_bad_input_and_floods(
    client: httpx.AsyncClient, app: FastAPI, stored: Stored
) -> None:
    form = await form_session(client)
    # Without the cookie the token was bound to (a cross-site post), nothing is filed.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://complaints.test"
    ) as stranger:
        r = await stranger.post("/complain", data=form)
        assert r.status_code == 403 and "页面已过期" in r.text
        r = await stranger.post("/complain", data={**form, "token": "1.2.3"})
        assert r.status_code == 403
    r = await client.post("/complain", data={**form, "category": "", "phone": "12"})
    assert r.status_code == 422
    assert "请选择投诉类别" in r.text and "手机号码格式不正确" in r.text
    assert ACCOUNT in r.text  # what they wrote is kept for them
    r = await client.post("/complain", data={**form, "website": "http://spam"})
    assert r.status_code == 422
    r = await client.post("/complain", json=form)
    assert r.status_code == 415
    assert (await stored.counts())["complaints"] == 0
    # Every post above counted against this address; start the hour afresh.
    app.state.limiter = RateLimiter()

    # One form, posted twice (a double tap, a refresh): one complaint, one receipt.
    first = await client.post("/complain", data=form)
    again = await client.post("/complain", data=form)
    assert first.status_code == again.status_code == 201
    code = re.search(r'id="receipt-code">([^<]+)<', first.text)
    assert code is not None and code.group(1) in again.text
    assert (await stored.counts())["complaints"] == 1
    assert first.headers["referrer-policy"] == "no-referrer"
    assert first.headers["cache-control"] == "no-store"

    # Anonymous: no phone needed, none kept.
    anonymous = await form_session(client)
    r = await client.post(
        "/complain", data={**anonymous, "phone": "", "name": "某人", "anonymous": "1"}
    )
    assert r.status_code == 201
    row = await stored.pool.fetchrow("SELECT anonymous FROM complaints ORDER BY received_at DESC")
    assert row["anonymous"] is True
    data = await stored.pool.fetchval(
        "SELECT data::text FROM events WHERE type = 'ComplaintReceived' "
        "ORDER BY global_position DESC"
    )
    assert '"complainant"' not in data

    # Five filings an hour per address: the sixth waits, and is told how long.
    for _ in range(2):
        r = await client.post("/complain", data=await form_session(client))
        assert r.status_code == 201
    r = await client.post("/complain", data=await form_session(client))
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert (await stored.counts())["complaints"] == 4


async def test_tracking_an_unknown_or_malformed_code_reveals_nothing(
    client: httpx.AsyncClient,
) -> None:
    for code in ("ABCD-EFGH-JKMN", "not-a-code", "<script>"):
        r = await client.get(f"/track/{code}")
        assert r.status_code == 404 and "未找到" in r.text and "<script>" not in r.text
    r = await client.get("/track", params={"code": "x"})
    assert r.status_code == 404 and "格式不正确" in r.text
    for _ in range(30):
        await client.get("/track/ABCD-EFGH-JKMN")
    r = await client.get("/track/ABCD-EFGH-JKMN")
    assert r.status_code == 429
