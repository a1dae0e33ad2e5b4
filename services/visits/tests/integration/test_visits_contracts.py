"""Every integration event visits emits validates against contracts/visits/<Event>.v1.json."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from eventkit.consumer import IdempotentConsumer
from eventkit.contracts import CONTRACTS_ENV, SchemaRegistry, dataschema_urn
from eventkit.personal import Vault
from eventkit.settings import KernelSettings
from eventkit.store import PostgresEventStore
from jingmin_visits.application.expiry import expire_once
from jingmin_visits.application.handlers import CallbackCommands
from jingmin_visits.integration.messages import CALLBACK_TYPES, EVENT_TYPES, TOPIC

if TYPE_CHECKING:
    from conftest import Headers, Intake, Stored

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    configured = os.environ.get(CONTRACTS_ENV)
    return SchemaRegistry.load(Path(configured) if configured else REPO / "contracts")


async def test_every_published_payload_validates_against_its_schema(
    registry: SchemaRegistry,
    make_consumer: Callable[..., IdempotentConsumer],
    intake: Intake,
    client: httpx.AsyncClient,
    officer: Headers,
    stored: Stored,
    db: asyncpg.Pool,
    settings: KernelSettings,
) -> None:
    consumer = make_consumer()
    day = datetime.now(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=1)
    late = datetime(day.year, day.month, day.day, 21, tzinfo=ZoneInfo("Asia/Shanghai"))
    # Resolved in the morning, so only the one resolved at 21:00 meets the quiet hours
    # whatever the hour the test runs.
    morning = {"received_at": late - timedelta(hours=12), "resolved_at": late - timedelta(hours=11)}
    cases = [
        intake.case(**morning),  # scheduled, then attempted and answered with a comment
        intake.case(kind="service", channel="window", **morning),  # answered, no comment
        intake.case(received_at=late - timedelta(hours=1), resolved_at=late),  # shifted; expires
        intake.case(category="sexual_offence", **morning),  # suppressed
        intake.case(kind="petition", channel="letter", **morning),  # declined
    ]
    for _case_id, envelopes in cases:
        for env in envelopes:
            assert await consumer.handle(intake.record(env)) == "applied"
    ids = [r["callback_id"] for r in await stored.callbacks()]
    by_case = {r["case_id"]: r["callback_id"] for r in await stored.callbacks()}
    first, second, _shifted, _, petition = (by_case[c] for c, _ in cases)

    async def post(cb: str, action: str, body: dict[str, Any]) -> None:
        r = await client.post(f"/v1/callbacks/{cb}/{action}", json=body, headers=officer)
        assert r.status_code == 200, r.text

    await post(first, "attempts", {"outcome": "reached"})
    await post(second, "assign", {"officer_id": "p1002"})
    await post(
        first,
        "answer",
        {"satisfaction": "dissatisfied", "security": "unsafe", "comment": "等了很久"},
    )
    await post(second, "answer", {"satisfaction": "basically_satisfied", "security": "safe"})
    await post(petition, "attempts", {"outcome": "declined"})
    later = CallbackCommands(
        PostgresEventStore(db),
        Vault(db, settings),
        clock=lambda: datetime.now(UTC) + timedelta(days=30),
    )
    assert await expire_once(later) == 1  # only the shifted one is still open
    assert await expire_once(later) == 0  # recorded once

    messages = await stored.outbox()
    # CallbackSurveySent is covered by the survey page test (it needs the SMS dispatcher).
    assert {m["type"] for m in messages} == set(CALLBACK_TYPES) - {
        "jingmin.visits.CallbackSurveySent.v1"
    }
    assert len(ids) == 5
    for m in messages:
        registry.validate(m["type"], m["payload"])
        assert m["topic"] == TOPIC
        assert m["headers"]["ce_dataschema"] == dataschema_urn(m["type"])
        assert m["headers"]["ce_source"] == "/jingmin/visits"
        assert m["headers"]["ce_subject"] == m["key"] == m["payload"]["callback_id"]
        assert "等了很久" not in m["raw"]
    scheduled = [m["payload"] for m in messages if m["type"].endswith("CallbackScheduled.v1")]
    assert sum("original_due_at" in p for p in scheduled) == 1
    assert (await stored.callbacks(cases[2][0]))[0]["status"] == "expired"


def test_every_emitted_type_has_a_schema(registry: SchemaRegistry) -> None:
    assert set(EVENT_TYPES) <= registry.types()
