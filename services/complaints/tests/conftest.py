"""Complaints test fixtures: the API in-process against a fresh database per test, a movable
clock, intake and visits messages built as those services publish them, and the contracts."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import ConsumerRecord
from eventkit.auth import issue_token
from eventkit.chain import ChainedEventStore, chain_key
from eventkit.consumer import IdempotentConsumer
from eventkit.contracts import CONTRACTS_ENV, SchemaRegistry
from eventkit.envelope import Envelope
from eventkit.personal import Vault
from eventkit.problems import PROBLEM_JSON
from eventkit.settings import KernelSettings
from eventkit.testing import DatabaseFactory, consumer_record
from fastapi import FastAPI
from jingmin_complaints.application.consumers import SourceHandler, build_consumer
from jingmin_complaints.application.handlers import Commands
from jingmin_complaints.entrypoints.app import create_app
from jingmin_complaints.service import SERVICE

BUREAU = "330602"
OTHER_BUREAU = "330603"
STATION = BUREAU + "001"
OTHER_STATION = BUREAU + "002"
SUBJECT = "sub_" + "a1b2c3d4e5f6g7h8"
REPO = Path(__file__).resolve().parents[3]

Headers = dict[str, str]
TokenFactory = Callable[..., Headers]
Record = ConsumerRecord[bytes, bytes]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock:
    """The service's clock: real time plus an offset a test can advance."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, **kw: float) -> None:
        self.offset += timedelta(**kw)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(tmp_path: Any) -> KernelSettings:
    # Nothing here needs the broker; a closed port keeps readiness honest and fast.
    return KernelSettings(
        jingmin_home=tmp_path,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        kafka_bootstrap_servers="127.0.0.1:9",
    )


@pytest.fixture
async def dsn(fresh_database: DatabaseFactory) -> str:
    return await fresh_database([SERVICE.migrations])


@pytest.fixture
async def app(settings: KernelSettings, dsn: str, clock: Clock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, dsn=dsn)
    async with application.router.lifespan_context(application):
        application.state.commands.clock = clock
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://complaints.test", timeout=30
    ) as c:
        yield c


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A separate pool for looking at what was stored (and for sweepers and consumers)."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=10)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def make_commands(
    db: asyncpg.Pool, settings: KernelSettings, clock: Clock
) -> Callable[[], Commands]:
    """A fresh Commands, as a newly (re)started sweeper process would build it."""
    return lambda: Commands(
        ChainedEventStore(db, chain_key(settings)), Vault(db, settings), clock=clock
    )


@pytest.fixture
def token(settings: KernelSettings) -> TokenFactory:
    def make(
        *roles: str, scopes: Iterable[str] = (BUREAU,), subject: str = "dc-1", **kw: Any
    ) -> Headers:
        value = issue_token(
            settings,
            subject=subject,
            roles=roles or ("supervisor",),
            scopes=list(scopes),
            **kw,
        )
        return {"Authorization": f"Bearer {value}"}

    return make


@pytest.fixture
def supervisor(token: TokenFactory) -> Headers:
    return token("supervisor")


def contracts_dir() -> Path:
    configured = os.environ.get(CONTRACTS_ENV)
    return Path(configured) if configured else REPO / "contracts"


@pytest.fixture(scope="session")
def registry() -> SchemaRegistry:
    return SchemaRegistry.load(contracts_dir())


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def complaint_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "bureau": BUREAU,
        "subject_unit": STATION,
        "subject_officer": "p2001",
        "channel": "visit",
        "category": "attitude",
        "complainant": {"name": "李建国", "phone": "13800001111", "address": "城关镇幸福路8号"},
        "account": "在城关派出所办理居住证时，民警态度恶劣，拒绝解释所需材料",
        "hoped_outcome": "希望民警道歉并一次告知所需材料",
    }
    body.update(overrides)
    return body


# Valid bodies for every complaint command, by path suffix.
COMMAND_BODIES: dict[str, dict[str, Any]] = {
    "acknowledge": {"note": "已受理，转督察大队调查"},
    "assign": {"investigator_id": "dc-7", "investigator_unit": BUREAU},
    "extend": {"reason": "witnesses", "note": "证人外出务工，需延期联系"},
    "conclude": {
        "outcome": "substantiated",
        "actions": ["apology", "criticism_education"],
        "findings": "经调取执法记录仪，民警确有态度生硬问题",
    },
    "reply": {"mode": "phone", "reply": "已电话告知调查结果并致歉"},
    "close": {},
    "reopen": {"reason": "disputed", "note": "投诉人认为处理过轻"},
    "remedy": {"remedy": "service_delivered", "note": "已为其办结居住证"},
}


class Api:
    """Thin helpers over the HTTP API; every call asserts the status it expects."""

    BUREAU = BUREAU
    OTHER_BUREAU = OTHER_BUREAU
    STATION = STATION
    OTHER_STATION = OTHER_STATION
    COMMAND_BODIES = COMMAND_BODIES
    body = staticmethod(complaint_body)
    problem = staticmethod(assert_problem)

    def __init__(self, client: httpx.AsyncClient, headers: Headers) -> None:
        self.client = client
        self.headers = headers

    async def receive(
        self, expect: int = 201, headers: Headers | None = None, **overrides: Any
    ) -> dict[str, Any]:
        r = await self.client.post(
            "/v1/complaints", json=complaint_body(**overrides), headers=headers or self.headers
        )
        assert r.status_code == expect, r.text
        body: dict[str, Any] = r.json()
        return body

    async def command(
        self,
        complaint_id: str,
        action: str,
        expect: int = 200,
        headers: Headers | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        payload = {**COMMAND_BODIES[action], **overrides}
        r = await self.client.post(
            f"/v1/complaints/{complaint_id}/{action}",
            json=payload,
            headers=headers or self.headers,
        )
        assert r.status_code == expect, r.text
        body: dict[str, Any] = r.json()
        return body

    async def get(self, path: str, headers: Headers | None = None, **params: Any) -> Any:
        r = await self.client.get(path, params=params, headers=headers or self.headers)
        assert r.status_code == 200, r.text
        return r.json()

    async def post(
        self, path: str, body: dict[str, Any], expect: int = 200, headers: Headers | None = None
    ) -> dict[str, Any]:
        r = await self.client.post(path, json=body, headers=headers or self.headers)
        assert r.status_code == expect, r.text
        answer: dict[str, Any] = r.json()
        return answer


@pytest.fixture
def api(client: httpx.AsyncClient, supervisor: Headers) -> Api:
    return Api(client, supervisor)


@pytest.fixture
def api_class() -> type[Api]:
    """The helper class itself, for an app a test builds on its own."""
    return Api


class Stored:
    """What PostgreSQL holds, for 'nothing was written' and 'exactly once' checks."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def counts(self) -> dict[str, int]:
        row = await self.pool.fetchrow(
            """SELECT (SELECT count(*) FROM events) AS events,
                      (SELECT count(*) FROM outbox) AS outbox,
                      (SELECT count(*) FROM complaints) AS complaints,
                      (SELECT count(*) FROM supervision_orders) AS orders,
                      (SELECT count(*) FROM idempotency_keys) AS idempotency_keys"""
        )
        return dict(row)

    async def event_types(self, stream_id: str | None = None) -> list[str]:
        rows = await self.pool.fetch(
            """SELECT type FROM events WHERE $1::text IS NULL OR stream_id = $1
               ORDER BY global_position""",
            stream_id,
        )
        return [r["type"] for r in rows]

    async def outbox(self, aggregate_id: str | None = None) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            """SELECT type, topic, aggregate_id, payload::text AS payload,
                      headers::text AS headers
               FROM outbox WHERE $1::text IS NULL OR aggregate_id = $1 ORDER BY id""",
            aggregate_id,
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


# ---- messages from intake and visits -----------------------------------------------------


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
    db: asyncpg.Pool,
    dead_letters: FakeProducer,
    settings: KernelSettings,
    clock: Clock,
    registry: SchemaRegistry,
) -> Callable[..., IdempotentConsumer]:
    """The complaints consumer on the test database (name= for a second, fresh consumer)."""

    def make(**kw: Any) -> IdempotentConsumer:
        handler = SourceHandler(chain_key(settings), Vault(db, settings), clock=clock)
        options: dict[str, Any] = {"retries": 2, "retry_delay": 0.01, **kw}
        return build_consumer(
            db,
            dead_letters,  # type: ignore[arg-type]
            handler,
            validate=registry.validate,
            **options,
        )

    return make


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


class Sources:
    """Builds intake and visits CloudEvents as those services publish them (per contracts)."""

    def __init__(self) -> None:
        self.offset = 0

    def envelope(
        self,
        type_: str,
        stream_id: str,
        version: int,
        at: datetime,
        data: dict[str, Any],
        *,
        source: str,
    ) -> Envelope:
        return Envelope(
            id=str(uuid.uuid4()),
            source=source,
            type=type_,
            subject=stream_id,
            time=at,
            data={"bureau": BUREAU, "station": STATION, "occurred_at": _iso(at), **data},
            dataschema=f"urn:jingmin:schema:{type_}",
            bureau=BUREAU,
            streamid=stream_id,
            streamversion=version,
        )

    def case_received(
        self,
        *,
        kind: str = "complaint",
        category: str | None = "inaction",
        at: datetime | None = None,
        case_id: str | None = None,
        party: str | None = None,
    ) -> Envelope:
        case_id = case_id or uuid.uuid4().hex
        t = at or utcnow() - timedelta(minutes=30)
        data: dict[str, Any] = {
            "case_id": case_id,
            "channel": "call_110",
            "kind": kind,
            "priority": "general",
            "area_type": "urban",
            "branch": "public_order",
            "subject_id": SUBJECT,
            "deadlines": {},
        }
        if category:
            data["category"] = category
        if party:
            data["party_category"] = party
        return self.envelope(
            "jingmin.intake.CaseReceived.v1", case_id, 1, t, data, source="/jingmin/intake"
        )

    def callback_scheduled(self, case_id: str, trigger: str = "case_resolved") -> Envelope:
        callback_id = f"cb-{case_id}-{trigger}"
        t = utcnow() - timedelta(hours=2)
        data = {
            "callback_id": callback_id,
            "case_id": case_id,
            "trigger": trigger,
            "subject_id": SUBJECT,
            "mode": "phone",
            "due_at": _iso(t + timedelta(days=1)),
            "original_due_at": _iso(t + timedelta(days=1)),
            "expires_at": _iso(t + timedelta(days=3)),
        }
        return self.envelope(
            "jingmin.visits.CallbackScheduled.v1", callback_id, 1, t, data, source="/jingmin/visits"
        )

    def callback_answered(
        self,
        case_id: str,
        *,
        satisfaction: str = "dissatisfied",
        trigger: str = "case_resolved",
        at: datetime | None = None,
        wants_complaint: bool | None = None,
        complaint_category: str | None = None,
        station: str = STATION,
    ) -> Envelope:
        callback_id = f"cb-{case_id}-{trigger}"
        data: dict[str, Any] = {
            "callback_id": callback_id,
            "station": station,
            "case_id": case_id,
            "trigger": trigger,
            "satisfaction": satisfaction,
            "security": "basically_safe",
            "has_comment": True,
        }
        if wants_complaint is not None:
            data["wants_complaint"] = wants_complaint
        if complaint_category:
            data["complaint_category"] = complaint_category
        return self.envelope(
            "jingmin.visits.CallbackAnswered.v1",
            callback_id,
            2,
            at or utcnow() - timedelta(minutes=5),
            data,
            source="/jingmin/visits",
        )

    def record(self, env: Envelope, topic: str) -> Record:
        self.offset += 1
        return consumer_record(env, topic, self.offset)


@pytest.fixture
def sources() -> Sources:
    return Sources()
