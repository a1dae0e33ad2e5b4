"""The unit register through the HTTP API against real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI
from jingmin_intake.integration.messages import UNIT_TOPIC

if TYPE_CHECKING:
    from conftest import Api, Headers, Stored, TokenFactory

pytestmark = pytest.mark.integration

STATION = "330602001"
BEAT = STATION + "01"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Clock:
    """The API's clock, moved on by the test: every event gets its own known time."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> None:
        self.now += timedelta(minutes=1)


@pytest.fixture
def clock(app: FastAPI) -> Clock:
    fixed = Clock()
    app.state.commands.clock = fixed
    return fixed


@pytest.fixture
def admin(token: TokenFactory) -> Headers:
    return token("admin", subject="admin-1")


async def post(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], headers: Headers, expect: int
) -> dict[str, Any]:
    r = await client.post(f"/v1/units{path}", json=body, headers=headers)
    assert r.status_code == expect, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def test_register_rename_twice_history_and_list(
    client: httpx.AsyncClient, admin: Headers, operator: Headers, clock: Clock
) -> None:
    made = await post(client, "", {"code": STATION, "name": "城南派出所"}, admin, 201)
    assert (made["code"], made["version"], made["status"]) == (STATION, 1, "active")
    for name in ("城南派出所（临时）", "府山派出所"):
        clock.tick()
        await post(client, f"/{STATION}/rename", {"name": name}, admin, 200)

    r = await client.get(f"/v1/units/{STATION}/history", headers=operator)
    assert r.status_code == 200, r.text
    history = r.json()
    assert [(e["version"], e["type"]) for e in history] == [
        (1, "UnitRegistered"),
        (2, "UnitRenamed"),
        (3, "UnitRenamed"),
    ]
    assert [datetime.fromisoformat(e["occurred_at"]) for e in history] == [
        T0 + timedelta(minutes=i) for i in range(3)
    ]
    assert history[2]["data"]["old_name"] == "城南派出所（临时）"
    assert history[0]["actor"] == "admin-1"

    listed = await client.get("/v1/units", params={"scope": "330602"}, headers=operator)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["divisions"] == [
        {"code": "33", "name": "浙江省"},
        {"code": "3306", "name": "绍兴市"},
        {"code": "330602", "name": "越城区"},
    ]
    [item] = body["items"]
    assert (item["code"], item["name"], item["county"], item["version"]) == (
        STATION,
        "府山派出所",
        "越城区",
        3,
    )


async def test_same_name_again_records_nothing(
    client: httpx.AsyncClient, admin: Headers, stored: Stored, clock: Clock
) -> None:
    await post(client, "", {"code": STATION, "name": "城南派出所"}, admin, 201)
    same = await post(client, f"/{STATION}/rename", {"name": "城南派出所"}, admin, 200)
    assert (same["version"], same["events"]) == (1, [])
    assert await stored.event_types(STATION) == ["UnitRegistered"]


async def test_events_and_outbox_rows_are_written_together(
    client: httpx.AsyncClient, admin: Headers, stored: Stored, clock: Clock
) -> None:
    await post(client, "", {"code": STATION, "name": "城南派出所"}, admin, 201)
    await post(client, "", {"code": BEAT, "name": "鲁迅社区警务室"}, admin, 201)
    await post(client, f"/{BEAT}/retire", {}, admin, 200)
    # A station with an active beat cannot retire; with the beat retired it can.
    rows = await stored.pool.fetch(
        "SELECT e.type, o.topic, o.payload::text AS payload FROM events e "
        "JOIN outbox o ON o.aggregate_id = e.stream_id AND o.type = "
        "'jingmin.intake.' || e.type || '.v1' WHERE e.stream_id = $1 ORDER BY e.version",
        BEAT,
    )
    assert [(r["type"], r["topic"]) for r in rows] == [
        ("UnitRegistered", UNIT_TOPIC),
        ("UnitRetired", UNIT_TOPIC),
    ]
    counts = await stored.counts()
    assert counts["events"] == counts["outbox"] == 3
    assert "鲁迅社区警务室" in rows[0]["payload"]


async def test_a_station_keeps_its_beats_until_they_retire(
    client: httpx.AsyncClient, admin: Headers, clock: Clock
) -> None:
    await post(client, "", {"code": STATION, "name": "城南派出所"}, admin, 201)
    await post(client, "", {"code": BEAT, "name": "鲁迅社区警务室"}, admin, 201)
    r = await client.post(f"/v1/units/{STATION}/retire", json={}, headers=admin)
    assert r.status_code == 409, r.text
    await post(client, f"/{BEAT}/retire", {}, admin, 200)
    await post(client, f"/{STATION}/retire", {}, admin, 200)


async def test_idempotent_retry_registers_once(
    client: httpx.AsyncClient, admin: Headers, stored: Stored, clock: Clock
) -> None:
    headers = {**admin, "Idempotency-Key": "unit-330602001"}
    body = {"code": STATION, "name": "城南派出所"}
    first = await client.post("/v1/units", json=body, headers=headers)
    again = await client.post("/v1/units", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["location"] == f"/v1/units/{STATION}"
    assert await stored.event_types(STATION) == ["UnitRegistered"]

    # Without the key, the same registration is a conflict, not a second unit.
    r = await client.post("/v1/units", json=body, headers=admin)
    assert r.status_code == 409, r.text

    rename = {**admin, "Idempotency-Key": "rename-1"}
    for _ in range(2):
        clock.tick()
        r = await client.post(
            f"/v1/units/{STATION}/rename", json={"name": "府山派出所"}, headers=rename
        )
        assert r.status_code == 200, r.text
    assert await stored.event_types(STATION) == ["UnitRegistered", "UnitRenamed"]


async def test_only_admins_of_the_bureau_write(
    api: Api,
    client: httpx.AsyncClient,
    admin: Headers,
    operator: Headers,
    token: TokenFactory,
    stored: Stored,
    clock: Clock,
) -> None:
    body = {"code": STATION, "name": "城南派出所"}
    api.problem(await client.post("/v1/units", json=body, headers=operator), 403)
    other = token("admin", scopes=[api.OTHER_BUREAU], subject="admin-2")
    api.problem(await client.post("/v1/units", json=body, headers=other), 403)
    await post(client, "", body, admin, 201)
    rename = {"name": "府山派出所"}
    api.problem(await client.post(f"/v1/units/{STATION}/rename", json=rename, headers=other), 403)
    api.problem(
        await client.post(f"/v1/units/{STATION}/rename", json=rename, headers=operator), 403
    )
    # Reading is for anyone in scope, and only there.
    api.problem(await client.get(f"/v1/units/{STATION}/history", headers=other), 403)
    api.problem(await client.get("/v1/units", params={"scope": "33"}, headers=admin), 403)
    assert await stored.event_types(STATION) == ["UnitRegistered"]


async def test_bad_input_is_422_and_writes_nothing(
    api: Api,
    client: httpx.AsyncClient,
    admin: Headers,
    token: TokenFactory,
    stored: Stored,
    clock: Clock,
) -> None:
    before = await stored.counts()
    for body in (
        {"code": "330602", "name": "城南派出所"},  # a bureau, not a station
        {"code": "3306020011", "name": "城南派出所"},  # 10 digits
        {"code": STATION, "name": "  "},
        {"code": BEAT, "name": "鲁迅社区警务室"},  # its station is not registered
    ):
        api.problem(await client.post("/v1/units", json=body, headers=admin), 422)
    province = token("admin", scopes=["33"], subject="province-admin")
    unknown = {"code": "339999001", "name": "无名派出所"}
    body = api.problem(await client.post("/v1/units", json=unknown, headers=province), 422)
    assert "GB/T 2260" in body["detail"]
    api.problem(
        await client.post(f"/v1/units/{STATION}/rename", json={"name": "x"}, headers=admin), 404
    )
    assert await stored.counts() == before


def test_openapi_documents_the_refusals(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    for path in ("/v1/units/{code}/rename", "/v1/units/{code}/retire", "/v1/units"):
        documented = set(paths[path]["post"]["responses"])
        assert {"403", "409", "422"} <= documented, (path, documented)
    assert "404" in paths["/v1/units/{code}/rename"]["post"]["responses"]
