"""Every installed service's API in one process, with one item of every kind in bureau 330602
(imported as `world`: pytest puts this folder on sys.path).

The hostile tests point bad tokens and other bureaus' tokens at real items: a route that
forgot its check would then answer with data, not a 404 for an id that does not exist.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from eventkit import db
from eventkit.auth import issue_token
from eventkit.service import ServiceSpec, load_services
from eventkit.settings import KernelSettings
from fastapi import FastAPI

# The in-process platform (APIs and the outbox-to-consumer bridge) lives beside the
# simulator's tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "simulate"))
from simkit import platform

BUREAU, STATION = "330602", "330602001"
# A station in intake's unit register (not STATION, whose code the auth matrix aims unit
# commands at): what the unit-names consumers follow.
REGISTERED_UNIT = "330602009"
OTHER_BUREAU = "330603"
ALL_ROLES = ("intake_operator", "officer", "supervisor", "commander", "partner", "admin", "service")


def settings_for(home: Path) -> KernelSettings:
    return KernelSettings(
        jingmin_home=home,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        kafka_bootstrap_servers="127.0.0.1:9",
    )


def app_factory(spec: ServiceSpec) -> Callable[..., FastAPI] | None:
    """The service's app factory, or None while the service has no API yet."""
    module, _, attr = spec.app.partition(":")
    try:
        factory: Callable[..., FastAPI] = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None
    return factory


def route_table(home: Path) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """(service, method, path) of every route of every installed API, and the absent ones."""
    settings = settings_for(home)
    rows, absent = [], {}
    for name, spec in load_services().items():
        factory = app_factory(spec)
        if factory is None:
            absent[name] = f"{spec.app} is not importable yet"
            continue
        app = factory(settings, dsn="postgresql://127.0.0.1:9/unused")
        for route in app.routes:
            for method in sorted(getattr(route, "methods", None) or ()):
                if method != "HEAD":
                    rows.append((name, method, route.path))  # type: ignore[attr-defined]
    return rows, absent


def databases(server: str) -> tuple[Callable[..., Any], list[str]]:
    made: list[str] = []

    async def make(migrations_dirs: Sequence[Path] = ()) -> str:
        name = f"test_{uuid.uuid4().hex[:12]}"
        await db.ensure_database(server, name)
        made.append(name)
        dsn = db.database_dsn(server, name)
        await asyncio.to_thread(db.migrate, dsn, *migrations_dirs)
        return dsn

    return make, made


@dataclass
class World:
    settings: KernelSettings
    clients: dict[str, httpx.AsyncClient]
    pools: dict[str, Any] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def token(self, *roles: str, scope: str = BUREAU, subject: str = "seed") -> dict[str, str]:
        value = issue_token(
            self.settings, subject=subject, roles=roles or ALL_ROLES, scopes=[scope]
        )
        return {"Authorization": f"Bearer {value}"}


async def _ok(response: httpx.Response) -> dict[str, Any]:
    assert 200 <= response.status_code < 300, f"{response.request.url}: {response.text}"
    body: dict[str, Any] = response.json()
    return body


def _ago(**kw: float) -> str:
    return (datetime.now(UTC) - timedelta(**kw)).isoformat()


async def seed(w: World, pump: Callable[[], Any]) -> None:
    """One item of every kind in bureau 330602, made through the APIs."""
    i, v, c = w.clients["intake"], w.clients["visits"], w.clients["complaints"]
    op = w.token("intake_operator")
    officer = w.token("officer", subject="330602001-02")
    sup = w.token("supervisor", subject="330602-dc-01")
    case = await _ok(
        await i.post(
            "/v1/cases",
            headers=op,
            json={
                "occurred_at": _ago(hours=5),
                "bureau": BUREAU,
                "station": STATION,
                "channel": "call_110",
                "kind": "alarm",
                "area_type": "urban",
                "category": "theft",
                "person": {"name": "王秀英", "phone": "13912345678"},
                "demand": "家里被盗，请派人来",
            },
        )
    )
    case_id = w.ids["case_id"] = case["case_id"]
    for path, body, hours in (
        ("first-contact", {"officer_id": "cc-01", "unit": BUREAU, "in_remit": True}, 4.9),
        (
            "dispatch",
            {"unit": STATION, "officer_ids": ["p1"], "reason": "盗窃", "purpose": "处置"},
            4.8,
        ),
        ("arrival", {}, 4.7),
        ("resolution", {"reply": "已处置"}, 4),
    ):
        await _ok(
            await i.post(
                f"/v1/cases/{case_id}/{path}",
                headers=op,
                json={**body, "occurred_at": _ago(hours=hours)},
            )
        )
    detail = await _ok(await i.get(f"/v1/cases/{case_id}", headers=op))
    w.ids["subject_id"] = next(
        e["data"]["subject_id"] for e in detail["history"] if e["type"] == "CaseReceived"
    )
    # Visits opens the callback from the published resolution.
    await pump()
    w.ids["callback_id"] = f"cb-{case_id}-case_resolved"
    await _ok(await v.get(f"/v1/callbacks/{w.ids['callback_id']}", headers=officer))
    visit = await _ok(
        await v.post(
            "/v1/visits",
            headers=officer,
            json={
                "occurred_at": _ago(hours=3),
                "bureau": BUREAU,
                "station": STATION,
                "programme": "aimin",
                "mode": "in_person",
                "target_type": "household",
                "area_type": "urban",
                "officer_id": "330602001-02",
                "officer_rank": "community_officer",
                "planned_for": _ago(hours=2),
            },
        )
    )
    w.ids["visit_id"] = visit["visit_id"]
    engagement = await _ok(
        await v.post(
            "/v1/engagements",
            headers=officer,
            json={
                "occurred_at": _ago(hours=2),
                "bureau": BUREAU,
                "station": STATION,
                "type": "forum",
                "venue": "community",
                "area_type": "urban",
                "organiser": "330602001-01",
                "participants": 30,
                "opinions": [{"feedback": "supportive", "text": "很好"}],
            },
        )
    )
    w.ids["engagement_id"] = engagement["engagement_id"]
    await _survey_wave(w, w.token("supervisor", subject="330602-sv-01"))
    complaint = await _ok(
        await c.post(
            "/v1/complaints",
            headers=sup,
            json={
                "occurred_at": _ago(hours=3),
                "bureau": BUREAU,
                "subject_unit": STATION,
                "channel": "hotline",
                "category": "attitude",
                "complainant": {"name": "李强", "phone": "13800001111"},
                "account": "民警态度恶劣",
            },
        )
    )
    w.ids["complaint_id"] = complaint["complaint_id"]
    found = await _ok(await c.get(f"/v1/complaints/{w.ids['complaint_id']}", headers=sup))
    w.ids["complainant_subject_id"] = next(
        e["data"]["subject_id"] for e in found["history"] if e["type"] == "ComplaintReceived"
    )
    order = await _ok(
        await c.post(
            "/v1/supervision/orders",
            headers=sup,
            json={
                "bureau": BUREAU,
                "owner_unit": STATION,
                "order_type": "tracking",
                "item_type": "case",
                "item_id": case_id,
            },
        )
    )
    w.ids["order_id"] = order["order_id"]
    inspection = await _ok(
        await c.post(
            "/v1/supervision/inspections",
            headers=sup,
            json={"bureau": BUREAU, "unit": STATION, "kind": "on_site"},
        )
    )
    w.ids["inspection_id"] = inspection["inspection_id"]
    await _ok(
        await c.post(
            "/v1/supervision/accountability",
            headers=sup,
            json={
                "bureau": BUREAU,
                "unit": STATION,
                "kind": "warning_education",
                "basis_type": "complaint",
                "basis_id": w.ids["complaint_id"],
            },
        )
    )
    unit = await _ok(
        await i.post(
            "/v1/units",
            headers=w.token("admin"),
            json={"code": REGISTERED_UNIT, "name": "城南派出所"},
        )
    )
    w.ids["unit_code"] = unit["code"]
    await pump()
    await _follow_ups(w, pump)


async def _survey_wave(w: World, organiser: dict[str, str]) -> None:
    """A survey wave with a station frame (names and numbers encrypted) and its sample."""
    v = w.clients["visits"]
    today = datetime.now(UTC).date()
    wave = await _ok(
        await v.post(
            "/v1/survey-waves",
            headers=organiser,
            json={
                "bureau": BUREAU,
                "title": "群众安全感和满意度调查",
                "period_start": (today - timedelta(days=1)).isoformat(),
                "period_end": (today + timedelta(days=30)).isoformat(),
                "modes": ["phone", "in_person", "sms"],
            },
        )
    )
    wave_id = w.ids["wave_id"] = wave["wave_id"]
    rows = [f"居民{i},1390000{i:04d},18-29,{('male', 'female')[i % 2]},local" for i in range(8)]
    frame = "name,phone,age_band,sex,residence\n" + "\n".join(rows) + "\n"
    await _ok(
        await v.post(
            f"/v1/survey-waves/{wave_id}/frames/{STATION}",
            headers={**organiser, "Content-Type": "text/csv"},
            content=frame.encode(),
        )
    )
    await _ok(
        await v.post(
            f"/v1/survey-waves/{wave_id}/draws", headers=organiser, json={"station": STATION}
        )
    )
    sample = await _ok(
        await v.get(
            f"/v1/survey-waves/{wave_id}/sample", headers=organiser, params={"station": STATION}
        )
    )
    w.ids["unit_id"] = sample["items"][0]["unit_id"]
    # An interview in person (no quiet hours) naming a problem in words: an IssueRaised from
    # a survey wave, which intake turns into a field case without learning who said it.
    await _ok(
        await v.post(
            f"/v1/survey-waves/{wave_id}/units/{sample['items'][1]['unit_id']}/attempts",
            headers=w.token("officer", subject="330602001-02"),
            json={
                "mode": "in_person",
                "outcome": "completed",
                "answers": {"security": "basically_safe", "satisfaction": "satisfied"},
                "problem_text": "菜市场门口经常有人打架",
            },
        )
    )


async def _follow_ups(w: World, pump: Callable[[], Any]) -> None:
    """What every consumer acts on: an issue raised, a complaint case, a 不满意 answer, a
    service-recovery report and a concluded complaint (each on the topic it travels on)."""
    i, v, c = w.clients["intake"], w.clients["visits"], w.clients["complaints"]
    op = w.token("intake_operator")
    officer = w.token("officer", subject="330602001-02")
    sup = w.token("supervisor", subject="330602-dc-01")
    await _ok(
        await v.post(
            f"/v1/visits/{w.ids['visit_id']}/complete",
            headers=officer,
            json={
                "occurred_at": _ago(hours=1.5),
                "feedback": "critical",
                "issues": [{"kind": "opinion", "category": "patrol", "summary": "希望加强巡逻"}],
            },
        )
    )
    complaint_case = await _ok(
        await i.post(
            "/v1/cases",
            headers=op,
            json={
                "occurred_at": _ago(hours=2),
                "bureau": BUREAU,
                "station": STATION,
                "channel": "online",
                "kind": "complaint",
                "category": "inaction",
                "area_type": "urban",
                "person": {"phone": "13700002222"},
                "demand": "报警后一直没人来",
            },
        )
    )
    w.ids["complaint_case_id"] = complaint_case["case_id"]
    await _ok(
        await v.post(
            f"/v1/callbacks/{w.ids['callback_id']}/answer",
            headers=officer,
            json={"occurred_at": _ago(hours=1), "satisfaction": "dissatisfied", "security": "safe"},
        )
    )
    await pump()  # complaints opens the service-recovery order from the 不满意
    orders = await _ok(
        await c.get(
            "/v1/supervision/orders",
            headers=sup,
            params={"item_id": w.ids["case_id"], "order_type": "service_recovery"},
        )
    )
    w.ids["recovery_order_id"] = orders["items"][0]["order_id"]
    await _ok(
        await c.post(
            f"/v1/supervision/orders/{w.ids['recovery_order_id']}/report",
            headers=officer,
            json={"report": "已向当事人道歉并整改"},
        )
    )
    complaint = {"complaint": w.ids["complaint_id"]}
    for path, body in (
        ("acknowledge", {}),
        ("assign", {"investigator_id": "330602-dc-02", "investigator_unit": BUREAU}),
        ("conclude", {"outcome": "unsubstantiated", "actions": ["explanation"]}),
    ):
        await _ok(
            await c.post(f"/v1/complaints/{complaint['complaint']}/{path}", headers=sup, json=body)
        )
    await pump()


@asynccontextmanager
async def world(server: str, home: Path) -> AsyncIterator[World]:
    make, made = databases(server)
    try:
        async with AsyncExitStack() as stack:
            p = await stack.enter_async_context(platform(make, home))
            clients = dict(p.clients)
            # Services simkit does not wire up (one added later) join with their API alone.
            for name, spec in load_services().items():
                factory = app_factory(spec)
                if name in clients or factory is None:
                    continue
                app = factory(p.settings, dsn=await make([spec.migrations]))
                await stack.enter_async_context(app.router.lifespan_context(app))
                client = httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url=f"http://{name}.test"
                )
                clients[name] = await stack.enter_async_context(client)
            w = World(p.settings, clients, dict(p.pools))
            await seed(w, p.pump)
            yield w
    finally:
        for name in made:
            await db.drop_database(server, name)
