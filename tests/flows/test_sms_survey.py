"""Across services, as a citizen meets it: a 110 case is resolved, the SMS survey goes out
with a single-use link, the citizen answers on the page in real headless Chromium, and the
answer is a CloudEvent on the visits topic, valid against its schema.

Intake lends the phone number through its audited contact API; the SMS goes to the local
sink, from which the test reads the link as the citizen's phone would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event
from eventkit import kafka, topics
from eventkit.auth import issue_token
from eventkit.contacts import ContactClient
from eventkit.contracts import SchemaRegistry
from eventkit.relay import OutboxRelay
from eventkit.settings import KernelSettings
from eventkit.testing import DatabaseFactory, free_port, wait_for
from flowkit import DeadLetters, published
from jingmin_intake.service import SERVICE as INTAKE
from jingmin_visits.service import SERVICE as VISITS
from playwright.async_api import Browser

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BUREAU, STATION = "330602", "330602001"
ANSWERED = "jingmin.visits.CallbackAnswered.v1"


@pytest.fixture
async def stack(
    fresh_database: DatabaseFactory, tmp_path: Path, kafka_bootstrap: str
) -> AsyncIterator[dict[str, Any]]:
    """Intake in-process, visits served on a real port (Chromium needs one), Kafka real."""
    from jingmin_intake.entrypoints.app import create_app as intake_app
    from jingmin_visits.adapters import survey_tokens
    from jingmin_visits.adapters.contacts import OwnerContacts
    from jingmin_visits.adapters.sms import SinkSmsGateway
    from jingmin_visits.application.intake_consumer import IntakeHandler, build_consumer
    from jingmin_visits.application.surveys import SurveyDispatcher
    from jingmin_visits.entrypoints.app import create_app as visits_app
    from jingmin_visits.integration.messages import to_messages  # noqa: F401  (spec import)

    settings = KernelSettings(
        jingmin_home=tmp_path,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        kafka_bootstrap_servers=kafka_bootstrap,
    )
    intake_dsn = await fresh_database([INTAKE.migrations])
    visits_dsn = await fresh_database([VISITS.migrations])
    await topics.ensure_topics(kafka_bootstrap, VISITS.topics)
    intake = intake_app(settings, dsn=intake_dsn)
    visits = visits_app(settings, dsn=visits_dsn)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            visits, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="none"
        )
    )
    serving = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started, timeout=20)
    visits_pool = await asyncpg.create_pool(visits_dsn, min_size=1, max_size=4)
    intake_pool = await asyncpg.create_pool(intake_dsn, min_size=1, max_size=4)
    producers: list[Any] = []

    def producer() -> Any:
        producers.append(kafka.producer(settings, kafka_bootstrap))
        return producers[-1]

    service_token = issue_token(settings, subject="svc:visits", roles=["service"], scopes=["33"])
    async with intake.router.lifespan_context(intake):
        contacts = ContactClient(
            "http://intake.test",
            lambda: service_token,
            transport=httpx.ASGITransport(app=intake),
        )
        base = f"http://127.0.0.1:{port}"
        async with (
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=intake), base_url="http://intake.test"
            ) as intake_client,
            httpx.AsyncClient(base_url=base, timeout=30) as visits_client,
        ):
            from eventkit.store import PostgresEventStore

            yield {
                "settings": settings,
                "intake": intake_client,
                "intake_pool": intake_pool,
                "visits": visits_client,
                "visits_pool": visits_pool,
                "visits_app": visits,
                "contacts": contacts,
                "base": base,
                "operator": {
                    "Authorization": "Bearer "
                    + issue_token(
                        settings, subject="op-1", roles=["intake_operator"], scopes=[BUREAU]
                    )
                },
                "commander": {
                    "Authorization": "Bearer "
                    + issue_token(settings, subject="cmd-1", roles=["commander"], scopes=[BUREAU])
                },
                "consumer": build_consumer(
                    visits_pool, DeadLetters(), handler=IntakeHandler(), retry_delay=0.01
                ),
                "dispatcher": SurveyDispatcher(
                    PostgresEventStore(visits_pool),
                    OwnerContacts(settings, clients={"intake": contacts}),
                    SinkSmsGateway(visits_pool),
                    survey_tokens.signing_key(settings),
                    public_base_url=base,
                    ttl=timedelta(hours=48),
                    signature="金华市公安局",
                ),
                "key": survey_tokens.signing_key(settings),
                "relay": OutboxRelay(
                    visits_pool,
                    producer,
                    service="visits-survey-test",
                ),
                "bootstrap": kafka_bootstrap,
            }
        await contacts.aclose()
    for made in producers:
        await made.stop()  # a relay keeps its producer after drain(); only run() stops it
    server.should_exit = True
    await serving
    await visits_pool.close()
    await intake_pool.close()


async def _resolved_110_case(s: dict[str, Any]) -> str:
    body = {
        "bureau": BUREAU,
        "station": STATION,
        "channel": "call_110",
        "kind": "alarm",
        "area_type": "urban",
        "category": "dispute.neighbour",
        "person": {"name": "陈建国", "phone": "13712345678"},
        "demand": "楼上装修噪音太大",
    }
    r = await s["intake"].post("/v1/cases", json=body, headers=s["operator"])
    assert r.status_code == 201, r.text
    case_id: str = r.json()["case_id"]
    for action, payload in (
        ("dispatch", {"unit": STATION, "officer_ids": ["p1"], "reason": "报警", "purpose": "调解"}),
        ("resolution", {"reply": "已调解"}),
    ):
        r = await s["intake"].post(
            f"/v1/cases/{case_id}/{action}", json=payload, headers=s["operator"]
        )
        assert r.status_code == 200, r.text
    return case_id


async def _answered_on_topic(bootstrap: str, callback_id: str) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list[Any] = []
    try:
        topic = "visits.callback.events.v1"
        await consumer.topics()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        ends = await topics.rewind(consumer, tps)

        async def drained() -> bool:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    if r.key == callback_id.encode():
                        found.append(r)
            positions = [await consumer.position(tp) for tp in tps]
            return all(p >= ends[tp] for p, tp in zip(positions, tps, strict=True))

        await wait_for(drained, timeout=30)
    finally:
        await consumer.stop()
    return found


async def test_survey_answered_in_chromium_is_a_valid_cloudevent_on_the_topic(
    stack: dict[str, Any], browser: Browser
) -> None:
    s = stack
    # A bureau that surveys around the clock, so the test does not depend on the hour.
    r = await s["visits"].put(
        f"/v1/policies/{BUREAU}",
        json={"quiet_start": "00:00", "quiet_end": "00:00"},
        headers=s["commander"],
    )
    assert r.status_code == 200, r.text
    case_id = await _resolved_110_case(s)
    for record in await published(s["intake_pool"]):
        assert await s["consumer"].handle(record) == "applied"
    callback_id = f"cb-{case_id}-case_resolved"
    row = await s["visits_pool"].fetchrow(
        "SELECT status, mode FROM callbacks WHERE callback_id = $1", callback_id
    )
    assert (row["status"], row["mode"]) == ("scheduled", "sms")

    assert await s["dispatcher"].run_once() == {"sent": 1}
    assert await s["dispatcher"].run_once() == {}  # sent once
    sms = await s["visits_pool"].fetch("SELECT * FROM sms_sink")
    assert len(sms) == 1
    assert sms[0]["to_masked"] == "137****5678"
    link = re.search(r"https?://\S+/s/[A-Za-z0-9_.-]+", sms[0]["text"])
    assert link, sms[0]["text"]
    assert case_id not in sms[0]["text"] and "噪音" not in sms[0]["text"]
    # Intake recorded who read the number, and why.
    reads = await s["intake_pool"].fetch("SELECT reader, purpose, result FROM contact_reads")
    assert [tuple(r) for r in reads] == [("svc:visits", "survey", "granted")]

    page = await browser.new_page(viewport={"width": 390, "height": 844})
    try:
        await page.goto(link.group(0))
        assert "群众满意度评价" in await page.content()
        assert case_id not in await page.content()
        await page.get_by_label("基本满意").check()
        await page.get_by_label("基本安全", exact=True).check()
        await page.get_by_label("您还有什么意见或建议？").fill("出警很快，但调解时态度有点急")
        await page.get_by_label("我要投诉").check()
        await page.get_by_role("button", name="提交评价").click()
        await page.wait_for_load_state()
        assert "感谢您的评价" in await page.content()
        assert "督察部门" in await page.content()

        # The link is used up: a second visit says so and records nothing.
        before = await s["visits_pool"].fetchval("SELECT count(*) FROM events")
        response = await page.goto(link.group(0))
        assert response is not None and response.status == 410
        assert "您已提交过评价" in await page.content()
    finally:
        await page.close()
    again = await s["visits"].post(
        link.group(0).removeprefix(s["base"]),
        content="satisfaction=satisfied&security=safe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert again.status_code == 410
    assert await s["visits_pool"].fetchval("SELECT count(*) FROM events") == before

    assert await s["relay"].drain() >= 3
    records = await _answered_on_topic(s["bootstrap"], callback_id)
    registry = SchemaRegistry.load(REPO / "contracts")
    answered = []
    for record in records:
        event = from_binary_event(
            KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value or b"")
        )
        registry.validate(event.get_type(), event.get_data())
        if event.get_type() == ANSWERED:
            answered.append(event)
    types = [dict(r.headers)["ce_type"].decode() for r in records]
    assert "jingmin.visits.CallbackSurveySent.v1" in types
    assert len(answered) == 1
    data = answered[0].get_data()
    assert data["satisfaction"] == "basically_satisfied"
    assert data["security"] == "basically_safe"
    assert data["via"] == "survey" and data["wants_complaint"] is True
    assert data["case_id"] == case_id and data["has_comment"] is True
    assert "态度" not in json.dumps(data, ensure_ascii=False)


async def test_expired_forged_and_incomplete_answers_record_nothing(
    stack: dict[str, Any], browser: Browser
) -> None:
    from jingmin_visits.adapters import survey_tokens

    s = stack
    pool = s["visits_pool"]
    async with pool.acquire() as conn:
        expired = await survey_tokens.mint(
            conn, s["key"], "cb-" + "0" * 32 + "-case_resolved", datetime.now(UTC) - timedelta(1)
        )
        fresh = await survey_tokens.mint(
            conn, s["key"], "cb-" + "1" * 32 + "-case_resolved", datetime.now(UTC) + timedelta(1)
        )
    page = await browser.new_page()
    try:
        response = await page.goto(f"{s['base']}/s/{expired}")
        assert response is not None and response.status == 410
        assert "评价链接已过期" in await page.content()
        forged = fresh[:-3] + ("AAA" if not fresh.endswith("AAA") else "BBB")
        response = await page.goto(f"{s['base']}/s/{forged}")
        assert response is not None and response.status == 404
        assert "链接无效" in await page.content()
        # Submitting without the two answers shows the form again with a clear message.
        await page.goto(f"{s['base']}/s/{fresh}")
        form_html = await page.content()
        assert "提交评价" in form_html
    finally:
        await page.close()
    incomplete = await s["visits"].post(
        f"/s/{fresh}",
        content="satisfaction=satisfied",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert incomplete.status_code == 422
    assert "请回答第1题和第2题" in incomplete.text
    assert incomplete.headers["cache-control"] == "no-store"
    assert await pool.fetchval("SELECT count(*) FROM events") == 0
    assert await pool.fetchval("SELECT count(*) FROM survey_tokens WHERE used_at IS NOT NULL") == 0


async def test_an_officer_borrows_the_number_for_a_phone_callback_and_both_sides_audit(
    stack: dict[str, Any],
) -> None:
    from jingmin_visits.adapters.contacts import OwnerContacts

    s = stack
    body = {
        "bureau": BUREAU,
        "station": STATION,
        "channel": "window",
        "kind": "service",
        "area_type": "urban",
        "person": {"name": "赵丽", "phone": "13611112222"},
        "demand": "办理居住证",
    }
    r = await s["intake"].post("/v1/cases", json=body, headers=s["operator"])
    case_id = r.json()["case_id"]
    r = await s["intake"].post(
        f"/v1/cases/{case_id}/resolution", json={"reply": "已办结"}, headers=s["operator"]
    )
    assert r.status_code == 200, r.text
    for record in await published(s["intake_pool"]):
        await s["consumer"].handle(record)
    callback_id = f"cb-{case_id}-case_resolved"
    # The served app borrows through its own client; point it at the in-process intake.
    app_contacts: OwnerContacts = s["visits_app"].state.contacts
    app_contacts.clients["intake"] = s["contacts"]
    officer = {
        "Authorization": "Bearer "
        + issue_token(s["settings"], subject="p3001", roles=["officer"], scopes=[STATION])
    }
    r = await s["visits"].get(f"/v1/callbacks/{callback_id}/contact", headers=officer)
    assert r.status_code == 200, r.text
    assert r.json() == {"callback_id": callback_id, "name": "赵丽", "phone": "13611112222"}
    assert r.headers["cache-control"] == "no-store"
    owner_side = await s["intake_pool"].fetch("SELECT reader, purpose, result FROM contact_reads")
    assert [tuple(x) for x in owner_side] == [("svc:visits", "callback", "granted")]
    our_side = await s["visits_pool"].fetch(
        "SELECT reader, purpose, item_id, result, correlation_id FROM contact_reads"
    )
    assert [tuple(x) for x in our_side] == [("p3001", "callback", case_id, "granted", callback_id)]
    elsewhere = {
        "Authorization": "Bearer "
        + issue_token(s["settings"], subject="p9", roles=["officer"], scopes=["330603"])
    }
    r = await s["visits"].get(f"/v1/callbacks/{callback_id}/contact", headers=elsewhere)
    assert r.status_code == 403

    # Once the person is erased in intake, the number is gone for good (410), and said so.
    admin = {
        "Authorization": "Bearer "
        + issue_token(s["settings"], subject="adm", roles=["admin"], scopes=[BUREAU])
    }
    subject = await s["intake_pool"].fetchval(
        "SELECT subject_id FROM cases WHERE case_id = $1", case_id
    )
    r = await s["intake"].delete(f"/v1/subjects/{subject}", headers=admin)
    assert r.status_code in (200, 204), r.text
    r = await s["visits"].get(f"/v1/callbacks/{callback_id}/contact", headers=officer)
    assert r.status_code == 410, r.text
    assert (
        await s["visits_pool"].fetchval(
            "SELECT result FROM contact_reads ORDER BY read_id DESC LIMIT 1"
        )
    ) == "erased"
