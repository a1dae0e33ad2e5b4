"""Across services: a case resolved through the intake API becomes one visits callback.

The intake outbox rows are exactly what the relay publishes (and what a replay republishes);
they are handed to the visits consumer as Kafka records, twice, as a redelivery would.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
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
    settings = KernelSettings(
        jingmin_home=tmp_path,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        kafka_bootstrap_servers="127.0.0.1:9",
    )
    intake_dsn = await fresh_database([INTAKE.migrations])
    visits_dsn = await fresh_database([VISITS.migrations])
    from jingmin_intake.entrypoints.app import create_app
    from jingmin_visits.application.intake_consumer import IntakeHandler, build_consumer

    app = create_app(settings, dsn=intake_dsn)
    intake_pool = await asyncpg.create_pool(intake_dsn, min_size=1, max_size=4)
    visits_pool = await asyncpg.create_pool(visits_dsn, min_size=1, max_size=4)
    dead = DeadLetters()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as c:
            yield {
                "client": c,
                "token": issue_token(
                    settings, subject="op-1", roles=["intake_operator"], scopes=[BUREAU]
                ),
                "intake": intake_pool,
                "visits": visits_pool,
                "dead": dead,
                "consumer": build_consumer(
                    visits_pool, dead, handler=IntakeHandler(), retry_delay=0.01
                ),
            }
    await intake_pool.close()
    await visits_pool.close()


async def _resolve_case(p: dict[str, Any], category: str) -> str:
    headers = {"Authorization": f"Bearer {p['token']}"}
    body = {
        "bureau": BUREAU,
        "station": STATION,
        "channel": "call_110",
        "kind": "alarm",
        "area_type": "urban",
        "category": category,
        "person": {"name": "王秀英", "phone": "13912345678"},
        "demand": "家里有人动手打人",
    }
    r = await p["client"].post("/v1/cases", json=body, headers=headers)
    assert r.status_code == 201, r.text
    case_id: str = r.json()["case_id"]
    for action, payload in (
        ("dispatch", {"unit": STATION, "officer_ids": ["p1"], "reason": "报警", "purpose": "处置"}),
        ("resolution", {"reply": "已处置"}),
        ("close", {}),
    ):
        r = await p["client"].post(f"/v1/cases/{case_id}/{action}", json=payload, headers=headers)
        assert r.status_code == 200, r.text
    return case_id


async def test_a_case_resolved_through_intake_gets_one_callback_or_one_suppression(
    platform: dict[str, Any],
) -> None:
    eligible = await _resolve_case(platform, "dispute.neighbour")
    violent = await _resolve_case(platform, "domestic_violence")
    records = await published(platform["intake"])
    consumer = platform["consumer"]

    outcomes = [await consumer.handle(r) for r in records + records]  # delivered twice

    assert outcomes.count("applied") == len(records) and not platform["dead"].sent
    visits: asyncpg.Pool = platform["visits"]
    rows = await visits.fetch("SELECT case_id, status, suppression_reason FROM callbacks")
    assert sorted((r["case_id"], r["status"], r["suppression_reason"]) for r in rows) == sorted(
        [(eligible, "scheduled", None), (violent, "suppressed", "domestic_violence")]
    )
    assert await visits.fetchval("SELECT count(*) FROM events") == 2
