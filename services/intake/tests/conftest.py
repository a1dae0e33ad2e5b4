"""Intake test fixtures: the API in-process against a fresh PostgreSQL database per test."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from eventkit.auth import issue_token
from eventkit.personal import Vault
from eventkit.problems import PROBLEM_JSON
from eventkit.settings import KernelSettings
from eventkit.store import PostgresEventStore
from eventkit.testing import DatabaseFactory
from fastapi import FastAPI
from jingmin_intake.application.handlers import CaseCommands
from jingmin_intake.entrypoints.app import create_app
from jingmin_intake.service import SERVICE

BUREAU = "330602"
OTHER_BUREAU = "330603"
STATION = BUREAU + "001"

Headers = dict[str, str]
TokenFactory = Callable[..., Headers]


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
async def app(settings: KernelSettings, dsn: str) -> AsyncIterator[FastAPI]:
    application = create_app(settings, dsn=dsn)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://intake.test", timeout=30
    ) as c:
        yield c


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A separate pool for looking at what was stored (and for sweepers)."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=10)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def make_commands(db: asyncpg.Pool, settings: KernelSettings) -> Callable[[], CaseCommands]:
    """A fresh CaseCommands, as a newly (re)started sweeper process would build it."""
    return lambda: CaseCommands(PostgresEventStore(db), Vault(db, settings))


@pytest.fixture
def token(settings: KernelSettings) -> TokenFactory:
    def make(
        *roles: str, scopes: Iterable[str] = (BUREAU,), subject: str = "op-1", **kw: Any
    ) -> Headers:
        value = issue_token(
            settings,
            subject=subject,
            roles=roles or ("intake_operator",),
            scopes=list(scopes),
            **kw,
        )
        return {"Authorization": f"Bearer {value}"}

    return make


@pytest.fixture
def operator(token: TokenFactory) -> Headers:
    return token("intake_operator")


def utcnow() -> datetime:
    return datetime.now(UTC)


def ago(**kw: float) -> str:
    return (utcnow() - timedelta(**kw)).isoformat()


def case_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "bureau": BUREAU,
        "station": STATION,
        "channel": "call_110",
        "kind": "alarm",
        "area_type": "urban",
        "person": {"name": "王秀英", "phone": "13912345678", "id_number": "33060219800101123X"},
        "demand": "楼下有人持刀争吵，请马上派人",
        "hoped_outcome": "尽快制止，保护家人安全",
    }
    body.update(overrides)
    if body["bureau"] != BUREAU and "station" not in overrides:
        body["station"] = body["bureau"] + "001"
    return body


# Valid bodies for every command, by path suffix.
COMMAND_BODIES: dict[str, dict[str, Any]] = {
    "first-contact": {"officer_id": "p1001", "unit": STATION, "in_remit": True},
    "dispatch": {
        "unit": STATION,
        "officer_ids": ["p1001", "p1002"],
        "reason": "群众报警称有人持刀",
        "purpose": "制止事态、保护现场",
    },
    "arrival": {"officer_id": "p1001"},
    "service-visits": {"missing_materials": ["household_register"], "hours_type": "regular"},
    "transfer": {
        "target_type": "external",
        "target": "12345",
        "explanation": "告知其向12345热线反映，电话12345",
        "person_informed": True,
    },
    "escalation": {"reason": "涉及多部门，需要政府协调"},
    "resolution": {"reply": "已调解，双方达成和解"},
    "rejection": {"reason": "false_report", "explanation": "经核实无此事"},
    "reopen": {"reason": "callback_unsatisfied", "note": "回访时群众表示不满意"},
    "close": {},
    "enforcement-decision": {"decision": "administrative_penalty", "note": "处罚款500元"},
    "classification": {"crime_victim": True, "preventable": True, "category": "theft.burglary"},
}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


class Api:
    """Thin helpers over the HTTP API; every call asserts the status it expects.

    Tests reach shared helpers through this fixture object rather than importing this
    conftest, which keeps them working under any pytest import mode.
    """

    BUREAU = BUREAU
    OTHER_BUREAU = OTHER_BUREAU
    STATION = STATION
    COMMAND_BODIES = COMMAND_BODIES
    body = staticmethod(case_body)
    problem = staticmethod(assert_problem)
    ago = staticmethod(ago)

    def __init__(self, client: httpx.AsyncClient, headers: Headers) -> None:
        self.client = client
        self.headers = headers

    async def receive(
        self, expect: int = 201, headers: Headers | None = None, **overrides: Any
    ) -> dict[str, Any]:
        r = await self.client.post(
            "/v1/cases", json=case_body(**overrides), headers=headers or self.headers
        )
        assert r.status_code == expect, r.text
        body: dict[str, Any] = r.json()
        return body

    async def command(
        self,
        case_id: str,
        action: str,
        expect: int = 200,
        headers: Headers | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        payload = {**COMMAND_BODIES[action], **overrides}
        r = await self.client.post(
            f"/v1/cases/{case_id}/{action}", json=payload, headers=headers or self.headers
        )
        assert r.status_code == expect, r.text
        body: dict[str, Any] = r.json()
        return body

    async def get(self, case_id: str, headers: Headers | None = None) -> dict[str, Any]:
        r = await self.client.get(f"/v1/cases/{case_id}", headers=headers or self.headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def list(self, headers: Headers | None = None, **params: Any) -> dict[str, Any]:
        r = await self.client.get("/v1/cases", params=params, headers=headers or self.headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


@pytest.fixture
def api(client: httpx.AsyncClient, operator: Headers) -> Api:
    return Api(client, operator)


class Stored:
    """What PostgreSQL holds, for 'nothing was written' and 'exactly once' checks."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def counts(self) -> dict[str, int]:
        row = await self.pool.fetchrow(
            """SELECT (SELECT count(*) FROM events) AS events,
                      (SELECT count(*) FROM outbox) AS outbox,
                      (SELECT count(*) FROM cases) AS cases,
                      (SELECT count(*) FROM case_deadlines) AS deadlines,
                      (SELECT count(*) FROM idempotency_keys) AS idempotency_keys"""
        )
        return dict(row)

    async def event_types(self, case_id: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT type FROM events WHERE stream_id = $1 ORDER BY version", case_id
        )
        return [r["type"] for r in rows]

    async def versions(self, case_id: str) -> list[int]:
        rows = await self.pool.fetch(
            "SELECT version FROM events WHERE stream_id = $1 ORDER BY version", case_id
        )
        return [r["version"] for r in rows]

    async def breaches(self, case_id: str) -> list[str]:
        """The deadlines breached in a case's stream, in order."""
        rows = await self.pool.fetch(
            "SELECT data->>'deadline' AS d FROM events WHERE stream_id = $1 "
            "AND type = 'DeadlineBreached' ORDER BY version",
            case_id,
        )
        return [r["d"] for r in rows]

    async def age_promises(self, minutes: float) -> None:
        """As if every promise had been recorded `minutes` earlier (the sweeper waits the
        bureau's grace after a promise is recorded, not only after it is due)."""
        await self.pool.execute(
            "UPDATE case_deadlines SET recorded_at = recorded_at - make_interval(mins => $1)",
            minutes,
        )

    async def outbox(self, case_id: str | None = None) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            """SELECT type, payload::text AS payload, headers::text AS headers FROM outbox
               WHERE $1::text IS NULL OR aggregate_id = $1 ORDER BY id""",
            case_id,
        )
        return [
            {
                "type": r["type"],
                "payload": json.loads(r["payload"]),
                "raw": r["payload"] + r["headers"],
                "headers": json.loads(r["headers"]),
            }
            for r in rows
        ]


@pytest.fixture
def stored(db: asyncpg.Pool) -> Stored:
    return Stored(db)
