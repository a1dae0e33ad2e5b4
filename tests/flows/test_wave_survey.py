"""Across services, as a sampled resident meets it: a supervisor sends a survey wave's SMS
invitations, the resident answers the questionnaire on the page in real headless Chromium,
and the problem they describe in words becomes exactly one intake case (channel `field`),
however often the message is delivered. An expired or reused link records nothing.
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
from eventkit.auth import issue_token
from eventkit.contracts import SchemaRegistry
from eventkit.settings import KernelSettings
from eventkit.testing import DatabaseFactory, free_port, wait_for
from flowkit import DeadLetters, published
from jingmin_intake.service import SERVICE as INTAKE
from jingmin_visits.service import SERVICE as VISITS
from playwright.async_api import Browser

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BUREAU, STATION = "330602", "330602001"
PROBLEM_TEXT = "小区东门晚上没有路灯，电动车经常被偷"


@pytest.fixture
async def stack(
    fresh_database: DatabaseFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[dict[str, Any]]:
    """Visits served on a real port (Chromium needs one), intake in-process."""
    from jingmin_intake.application.visits_consumer import build_consumer
    from jingmin_intake.entrypoints.app import create_app as intake_app
    from jingmin_visits.entrypoints.app import create_app as visits_app

    settings = KernelSettings(
        jingmin_home=tmp_path,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        kafka_bootstrap_servers="127.0.0.1:9",
    )
    intake_dsn = await fresh_database([INTAKE.migrations])
    visits_dsn = await fresh_database([VISITS.migrations])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("VISITS_PUBLIC_BASE_URL", base)
    monkeypatch.setenv("VISITS_SMS_SIGNATURE", "金华市公安局越城分局")
    intake, visits = intake_app(settings, dsn=intake_dsn), visits_app(settings, dsn=visits_dsn)
    server = uvicorn.Server(
        uvicorn.Config(
            visits, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="none"
        )
    )
    serving = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started, timeout=20)
    intake_pool = await asyncpg.create_pool(intake_dsn, min_size=1, max_size=4)
    visits_pool = await asyncpg.create_pool(visits_dsn, min_size=1, max_size=4)
    dead = DeadLetters()

    def bearer(*roles: str, subject: str, scope: str = BUREAU) -> dict[str, str]:
        value = issue_token(settings, subject=subject, roles=list(roles), scopes=[scope])
        return {"Authorization": f"Bearer {value}"}

    try:
        async with intake.router.lifespan_context(intake):
            async with (
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=intake), base_url="http://intake.test"
                ) as intake_client,
                httpx.AsyncClient(base_url=base, timeout=30) as visits_client,
            ):
                yield {
                    "settings": settings,
                    "base": base,
                    "intake": intake_client,
                    "visits": visits_client,
                    "intake_pool": intake_pool,
                    "visits_pool": visits_pool,
                    "dead": dead,
                    "supervisor": bearer("supervisor", subject="330602-sv-01"),
                    "commander": bearer("commander", subject="330602-cm-01"),
                    "reader": bearer("officer", subject="p1001"),
                    "consumer": lambda name: build_consumer(
                        intake_pool, dead, settings, name=name, retry_delay=0.01
                    ),
                }
    finally:
        server.should_exit = True
        await serving
        await intake_pool.close()
        await visits_pool.close()


def _frame(rows: int) -> str:
    lines = ["name,phone,address,age_band,sex,residence"]
    for i in range(rows):
        age = ("18-29", "30-44", "45-59", "60+")[i % 4]
        sex = "female" if i % 2 else "male"
        lines.append(f"居民{i:02d},1390000{i:04d},城东小区{i}幢,{age},{sex},local")
    return "\n".join(lines) + "\n"


async def _sms_wave(s: dict[str, Any]) -> tuple[str, list[str]]:
    """A wave surveyed by SMS around the clock (quiet hours off), its sample drawn."""
    v, sv = s["visits"], s["supervisor"]
    r = await v.put(
        f"/v1/policies/{BUREAU}",
        json={"quiet_start": "00:00", "quiet_end": "00:00"},
        headers=s["commander"],
    )
    assert r.status_code == 200, r.text
    today = datetime.now(UTC).date()
    r = await v.post(
        "/v1/survey-waves",
        json={
            "bureau": BUREAU,
            "title": "2026年第四季度群众安全感和满意度调查",
            "period_start": (today - timedelta(days=1)).isoformat(),
            "period_end": (today + timedelta(days=14)).isoformat(),
            "precision": 0.2,
            "expected_response_rate": 1.0,
            "modes": ["sms", "phone"],
        },
        headers=sv,
    )
    assert r.status_code == 201, r.text
    wave_id: str = r.json()["wave_id"]
    r = await v.post(
        f"/v1/survey-waves/{wave_id}/frames/{STATION}",
        content=_frame(12).encode(),
        headers={**sv, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    r = await v.post(
        f"/v1/survey-waves/{wave_id}/draws", json={"station": STATION, "seed": 7}, headers=sv
    )
    assert r.status_code == 200, r.text
    r = await v.get(f"/v1/survey-waves/{wave_id}/sample", params={"station": STATION}, headers=sv)
    return wave_id, [u["unit_id"] for u in r.json()["items"]]


async def test_a_wave_questionnaire_answered_by_sms_link_in_chromium(
    stack: dict[str, Any], browser: Browser
) -> None:
    s = stack
    pool = s["visits_pool"]
    wave_id, units = await _sms_wave(s)

    r = await s["visits"].post(
        f"/v1/survey-waves/{wave_id}/invitations", json={"station": STATION},
        headers=s["supervisor"],
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["counts"] == {"sent": len(units)}
    # Sending again sends nothing: every unit holds a valid link.
    r = await s["visits"].post(
        f"/v1/survey-waves/{wave_id}/invitations", json={"station": STATION},
        headers=s["supervisor"],
    )  # fmt: skip
    assert r.json()["counts"] == {"already_sent": len(units)}
    sms = await pool.fetch("SELECT text, to_masked FROM sms_sink ORDER BY sent_at")
    assert len(sms) == len(units)
    assert all("金华市公安局越城分局" in m["text"] and "居民" not in m["text"] for m in sms)
    links = [re.search(r"https?://\S+/s/[A-Za-z0-9_.-]+", m["text"]) for m in sms]
    assert all(links)
    link = links[0].group(0)  # type: ignore[union-attr]
    assert wave_id not in link and not any(u in link for u in units)
    reads = await pool.fetch("SELECT reader, purpose, result FROM contact_reads")
    assert {tuple(x) for x in reads} == {("330602-sv-01", "survey", "granted")}
    assert len(reads) == len(units)

    page = await browser.new_page(viewport={"width": 390, "height": 844})
    try:
        response = await page.goto(link)
        assert response is not None and response.status == 200
        html = await page.content()
        assert "群众安全感和满意度调查" in html and "<script" not in html
        await page.get_by_label("基本安全", exact=True).check()
        await page.get_by_label("满意", exact=True).check()
        await page.get_by_label("变好").check()
        await page.get_by_label("盗窃").check()
        await page.get_by_label("请具体说说这个问题").fill(PROBLEM_TEXT)
        await page.get_by_label("您对公安工作还有什么意见和建议").fill("希望多巡逻")
        await page.get_by_role("button", name="提交问卷").click()
        await page.wait_for_load_state()
        assert "感谢您参加调查" in await page.content()
        assert "转交当地派出所" in await page.content()

        # The link is used up: opening or posting it again records nothing.
        before = await pool.fetchval("SELECT count(*) FROM events")
        response = await page.goto(link)
        assert response is not None and response.status == 410
        assert "您已提交过评价" in await page.content()
    finally:
        await page.close()
    again = await s["visits"].post(
        link.removeprefix(s["base"]),
        content="security=unsafe&satisfaction=dissatisfied",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert again.status_code == 410
    assert await pool.fetchval("SELECT count(*) FROM events") == before

    # Recorded through the wave's own domain code: one completed SMS interview.
    r = await s["visits"].get(
        f"/v1/survey-waves/{wave_id}/sample", params={"station": STATION}, headers=s["reader"]
    )
    done = [u for u in r.json()["items"] if u["disposition"] == "completed"]
    assert len(done) == 1 and done[0]["attempts"] == 1
    rows = await pool.fetch(
        "SELECT type, data FROM events WHERE stream_id = $1 AND type = ANY($2) ORDER BY version",
        wave_id,
        ["SurveyAttemptRecorded", "IssueRaised"],
    )
    assert [r["type"] for r in rows] == ["SurveyAttemptRecorded", "IssueRaised"]
    attempt = json.loads(rows[0]["data"])
    assert attempt["mode"] == "sms" and attempt["outcome"] == "completed"
    assert attempt["answers"] == {
        "security": "basically_safe", "satisfaction": "satisfied", "change": "better",
        "problem": "theft",
    }  # fmt: skip
    assert PROBLEM_TEXT not in rows[1]["data"]  # encrypted at rest

    # Nothing personal and no unit on any topic; every message fits its contract.
    registry = SchemaRegistry.load(REPO / "contracts")
    outbox = await pool.fetch("SELECT type, payload::text AS payload FROM outbox")
    for m in outbox:
        registry.validate(m["type"], json.loads(m["payload"]))
        assert PROBLEM_TEXT not in m["payload"] and "希望多巡逻" not in m["payload"]
        assert "居民" not in m["payload"] and "1390000" not in m["payload"]
        assert not any(u in m["payload"] for u in units)
    issue = next(json.loads(m["payload"]) for m in outbox if m["type"].endswith("IssueRaised.v1"))
    assert issue["source_type"] == "survey" and issue["source_id"] == wave_id
    assert "subject_id" not in issue and issue["category"] == "survey.theft"

    # The problem opens exactly one field case, delivered twice and replayed by a new group.
    records = await published(pool)
    first, replay = s["consumer"]("intake.cases.from-visits"), s["consumer"]("replayed-group")
    for record in records + records:
        await first.handle(record)
    for record in records:
        await replay.handle(record)
    assert s["dead"].sent == []
    cases = await s["intake"].get(
        "/v1/cases", params={"source_ref": f"visits:survey:{wave_id}"}, headers=s["reader"]
    )
    assert cases.status_code == 200, cases.text
    items = cases.json()["items"]
    assert len(items) == 1 and items[0]["channel"] == "field"
    assert items[0]["case_id"] == issue["issue_id"]
    assert (
        await s["intake_pool"].fetchval("SELECT count(*) FROM events WHERE type = 'CaseReceived'")
        == 1
    )


async def test_an_expired_or_reused_wave_link_records_nothing(
    stack: dict[str, Any], browser: Browser
) -> None:
    from jingmin_visits.adapters import survey_tokens

    s = stack
    pool = s["visits_pool"]
    wave_id, units = await _sms_wave(s)
    key = survey_tokens.signing_key(s["settings"])
    async with pool.acquire() as conn:
        expired = await survey_tokens.mint_for_unit(
            conn, key, wave_id, units[0], datetime.now(UTC) - timedelta(minutes=1)
        )
        used = await survey_tokens.mint_for_unit(
            conn, key, wave_id, units[1], datetime.now(UTC) + timedelta(days=1)
        )
        await conn.execute("UPDATE survey_tokens SET used_at = now() WHERE wave_id = $1 AND "
                           "unit_id = $2", wave_id, units[1])  # fmt: skip
    before = await pool.fetchval("SELECT count(*) FROM events")
    page = await browser.new_page(viewport={"width": 390, "height": 844})
    try:
        response = await page.goto(f"{s['base']}/s/{expired}")
        assert response is not None and response.status == 410
        assert "评价链接已过期" in await page.content()
        response = await page.goto(f"{s['base']}/s/{used}")
        assert response is not None and response.status == 410
        assert "您已提交过评价" in await page.content()
    finally:
        await page.close()
    for token in (expired, used):
        r = await s["visits"].post(
            f"/s/{token}",
            content="security=safe&satisfaction=satisfied",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 410
    assert await pool.fetchval("SELECT count(*) FROM events") == before
    r = await s["visits"].get(
        f"/v1/survey-waves/{wave_id}/sample", params={"station": STATION}, headers=s["reader"]
    )
    assert all(u["attempts"] == 0 for u in r.json()["items"])
