"""Across services: a visit that raises two issues opens two intake cases, once.

The visits outbox rows are exactly what the relay publishes (and what a replay
republishes); they reach the intake consumer twice, as a redelivery would, and then once
more through a second consumer, as a replay read by a new consumer group would.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from eventkit.auth import issue_token
from eventkit.settings import KernelSettings
from eventkit.testing import DatabaseFactory
from flowkit import DeadLetters, published
from jingmin_intake.service import SERVICE as INTAKE
from jingmin_visits.service import SERVICE as VISITS

pytestmark = pytest.mark.integration

BUREAU, STATION = "330602", "330602001"


@pytest.fixture
async def platform(
    fresh_database: DatabaseFactory, tmp_path: Path
) -> AsyncIterator[dict[str, Any]]:
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
    intake, visits = intake_app(settings, dsn=intake_dsn), visits_app(settings, dsn=visits_dsn)
    intake_pool = await asyncpg.create_pool(intake_dsn, min_size=1, max_size=4)
    visits_pool = await asyncpg.create_pool(visits_dsn, min_size=1, max_size=4)
    dead = DeadLetters()
    officer = issue_token(settings, subject="p1001", roles=["officer"], scopes=[BUREAU])
    async with intake.router.lifespan_context(intake), visits.router.lifespan_context(visits):
        async with (
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=intake), base_url="http://intake.test"
            ) as intake_client,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=visits), base_url="http://visits.test"
            ) as visits_client,
        ):
            yield {
                "intake": intake_client,
                "visits": visits_client,
                "headers": {"Authorization": f"Bearer {officer}"},
                "intake_pool": intake_pool,
                "visits_pool": visits_pool,
                "dead": dead,
                "consumer": lambda name: build_consumer(
                    intake_pool, dead, settings, name=name, retry_delay=0.01
                ),
            }
    await intake_pool.close()
    await visits_pool.close()


async def test_a_visit_raising_two_issues_opens_two_field_cases_once(
    platform: dict[str, Any],
) -> None:
    p = platform
    r = await p["visits"].post(
        "/v1/visits",
        json={
            "bureau": BUREAU,
            "station": STATION,
            "programme": "aimin",
            "mode": "in_person",
            "target_type": "household",
            "area_type": "suburban",
            "officer_id": "p1001",
            "officer_rank": "community_officer",
            "planned_for": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "person": {"name": "刘大爷", "phone": "13655556666"},
        },
        headers=p["headers"],
    )
    assert r.status_code == 201, r.text
    visit_id = r.json()["visit_id"]
    r = await p["visits"].post(
        f"/v1/visits/{visit_id}/complete",
        json={
            "feedback": "critical",
            "issues": [
                {"kind": "help", "category": "public_safety.lighting", "summary": "路灯坏了"},
                {"kind": "tip", "category": "fraud.telecom", "summary": "有人上门推销假药"},
            ],
        },
        headers=p["headers"],
    )
    assert r.status_code == 200, r.text

    records = await published(p["visits_pool"])
    first, replay = p["consumer"]("intake.cases.from-visits"), p["consumer"]("replayed-group")
    outcomes = [await first.handle(r) for r in records + records] + [
        await replay.handle(r) for r in records
    ]
    assert outcomes.count("applied") == 2 * len(records)  # each consumer once per message
    assert p["dead"].sent == []

    cases = await p["intake"].get(
        "/v1/cases", params={"source_ref": f"visits:visit:{visit_id}"}, headers=p["headers"]
    )
    assert cases.status_code == 200, cases.text
    items = cases.json()["items"]
    assert len(items) == 2
    assert {c["channel"] for c in items} == {"field"}
    detail = (await p["visits"].get(f"/v1/visits/{visit_id}", headers=p["headers"])).json()
    assert {c["case_id"] for c in items} == {i["case_id"] for i in detail["issues"]}
    total = await p["intake_pool"].fetchval(
        "SELECT count(*) FROM events WHERE type = 'CaseReceived'"
    )
    assert total == 2
