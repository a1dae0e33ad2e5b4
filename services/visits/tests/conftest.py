"""Visits test fixtures: the API in-process, the intake consumer fed with built records."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import ConsumerRecord
from eventkit.auth import issue_token
from eventkit.consumer import IdempotentConsumer
from eventkit.envelope import Envelope
from eventkit.problems import PROBLEM_JSON
from eventkit.settings import KernelSettings
from eventkit.testing import DatabaseFactory, consumer_record
from fastapi import FastAPI
from jingmin_visits.application.intake_consumer import IntakeHandler, build_consumer
from jingmin_visits.entrypoints.app import create_app
from jingmin_visits.service import SERVICE

BUREAU = "330602"
OTHER_BUREAU = "330603"
STATION = BUREAU + "001"
SUBJECT = "sub_" + "a1b2c3d4e5f6"
INTAKE_TOPIC = "intake.case.events.v1"

Headers = dict[str, str]
TokenFactory = Callable[..., Headers]
Record = ConsumerRecord[bytes, bytes]


@pytest.fixture
def settings(tmp_path: Any) -> KernelSettings:
    return KernelSettings(
        jingmin_home=tmp_path,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        kafka_bootstrap_servers="127.0.0.1:9",
    )


@pytest.fixture
async def dsn(fresh_database: DatabaseFactory) -> str:
    return await fresh_database([SERVICE.migrations])


@pytest.fixture
async def app(settings: KernelSettings, dsn: str) -> AsyncIterator[FastAPI]:
    application = create_app(settings, dsn=dsn)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://visits.test", timeout=30
    ) as c:
        yield c


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=10)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def token(settings: KernelSettings) -> TokenFactory:
    def make(
        *roles: str, scopes: Iterable[str] = (BUREAU,), subject: str = "p1001", **kw: Any
    ) -> Headers:
        value = issue_token(
            settings, subject=subject, roles=roles or ("officer",), scopes=list(scopes), **kw
        )
        return {"Authorization": f"Bearer {value}"}

    return make


@pytest.fixture
def officer(token: TokenFactory) -> Headers:
    return token("officer")


@dataclass
class FakeProducer:
    """Stands in for Kafka where only dead letters would be produced; keeps what was sent."""

    sent: list[tuple[str, bytes | None, list[tuple[str, bytes]]]] = field(default_factory=list)

    async def send(
        self, topic: str, value: bytes | None = None, key: Any = None, headers: Any = None
    ) -> Any:
        self.sent.append((topic, value, list(headers or [])))

        async def acked() -> None:
            return None

        return acked()


@pytest.fixture
def dead_letters() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
def make_consumer(
    db: asyncpg.Pool, dead_letters: FakeProducer
) -> Callable[..., IdempotentConsumer]:
    """The visits intake consumer on the test database (name= for a second, fresh consumer)."""

    def make(**kw: Any) -> IdempotentConsumer:
        options: dict[str, Any] = {"retries": 2, "retry_delay": 0.01, **kw}
        return build_consumer(db, dead_letters, handler=IntakeHandler(), **options)  # type: ignore[arg-type]

    return make


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


class Intake:
    """Builds intake CloudEvents as the intake service publishes them (valid per contracts)."""

    def __init__(self) -> None:
        self.offset = 0

    def envelope(
        self, type_: str, case_id: str, version: int, at: datetime, data: dict[str, Any]
    ) -> Envelope:
        ce_type = f"jingmin.intake.{type_}.v1"
        return Envelope(
            id=str(uuid.uuid4()),
            source="/jingmin/intake",
            type=ce_type,
            subject=case_id,
            time=at,
            data={
                "case_id": case_id,
                "bureau": BUREAU,
                "station": STATION,
                "occurred_at": _iso(at),
                **data,
            },
            dataschema=f"urn:jingmin:schema:{ce_type}",
            bureau=BUREAU,
            streamid=case_id,
            streamversion=version,
        )

    def case(
        self,
        *,
        kind: str = "alarm",
        channel: str = "call_110",
        category: str | None = "dispute.neighbour",
        subject_id: str | None = SUBJECT,
        received_at: datetime | None = None,
        resolved_at: datetime | None = None,
    ) -> tuple[str, list[Envelope]]:
        """A case's messages: received, first contact, resolved, closed."""
        case_id = uuid.uuid4().hex
        t0 = received_at or datetime.now(UTC) - timedelta(hours=1)
        t1 = resolved_at or t0 + timedelta(minutes=30)
        received: dict[str, Any] = {
            "channel": channel,
            "kind": kind,
            "priority": "urgent" if kind == "alarm" else "general",
            "area_type": "urban",
            "branch": "public_order",
            "deadlines": {"resolution": _iso(t0 + timedelta(days=1))},
        }
        if category:
            received["category"] = category
        if subject_id:
            received["subject_id"] = subject_id
        return case_id, [
            self.envelope("CaseReceived", case_id, 1, t0, received),
            self.envelope(
                "FirstContactAssigned",
                case_id,
                2,
                t0 + timedelta(minutes=1),
                {"officer_id": "p1001", "unit": STATION, "in_remit": True, "deadlines": {}},
            ),
            self.envelope("CaseResolved", case_id, 3, t1, {}),
            self.envelope("CaseClosed", case_id, 4, t1 + timedelta(minutes=5), {}),
        ]

    def record(self, env: Envelope, *, topic: str = INTAKE_TOPIC) -> Record:
        self.offset += 1
        return consumer_record(env, topic, self.offset)


@pytest.fixture
def intake() -> Intake:
    return Intake()


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


class Stored:
    """What PostgreSQL holds, for 'nothing was written' and 'exactly once' checks."""

    BUREAU = BUREAU
    OTHER_BUREAU = OTHER_BUREAU
    STATION = STATION
    SUBJECT = SUBJECT
    problem = staticmethod(assert_problem)

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def counts(self) -> dict[str, int]:
        row = await self.pool.fetchrow(
            """SELECT (SELECT count(*) FROM events) AS events,
                      (SELECT count(*) FROM outbox) AS outbox,
                      (SELECT count(*) FROM callbacks) AS callbacks,
                      (SELECT count(*) FROM opt_outs) AS opt_outs,
                      (SELECT count(*) FROM idempotency_keys) AS idempotency_keys"""
        )
        return dict(row)

    async def callbacks(self, case_id: str | None = None) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM callbacks WHERE $1::text IS NULL OR case_id = $1 ORDER BY callback_id",
            case_id,
        )
        return [dict(r) for r in rows]

    async def event_types(self, stream_id: str | None = None) -> list[str]:
        rows = await self.pool.fetch(
            """SELECT type FROM events WHERE $1::text IS NULL OR stream_id = $1
               ORDER BY global_position""",
            stream_id,
        )
        return [r["type"] for r in rows]

    async def outbox(self) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT type, topic, aggregate_id, payload::text AS payload, headers::text AS headers "
            "FROM outbox ORDER BY id"
        )
        return [
            {
                "type": r["type"],
                "topic": r["topic"],
                "key": r["aggregate_id"],
                "payload": json.loads(r["payload"]),
                "headers": json.loads(r["headers"]),
                "raw": r["payload"] + r["headers"],
            }
            for r in rows
        ]


@pytest.fixture
def stored(db: asyncpg.Pool) -> Stored:
    return Stored(db)
