"""Visits (走访) and engagement events through the HTTP API, as an officer uses them."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from eventkit.contracts import CONTRACTS_ENV, SchemaRegistry
from jingmin_visits.integration.messages import VISIT_TOPIC, VISIT_TYPES

if TYPE_CHECKING:
    from conftest import Headers, Stored, TokenFactory

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[4]
BUREAU = "330602"
STATION = BUREAU + "001"
BEAT = STATION + "01"


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    configured = os.environ.get(CONTRACTS_ENV)
    return SchemaRegistry.load(Path(configured) if configured else REPO / "contracts")


def _visit(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "bureau": BUREAU,
        "station": STATION,
        "beat": BEAT,
        "programme": "aimin",
        "mode": "in_person",
        "target_type": "household",
        "area_type": "rural",
        "officer_id": "p1001",
        "officer_rank": "community_officer",
        "planned_for": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
        "person": {"name": "王秀英", "phone": "13800138000", "address": "城南村3组12号"},
    }
    body.update(over)
    return body


async def _schedule(client: httpx.AsyncClient, headers: Headers, **over: Any) -> str:
    r = await client.post("/v1/visits", json=_visit(**over), headers=headers)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/visits/{r.json()['visit_id']}"
    visit_id: str = r.json()["visit_id"]
    return visit_id


async def test_a_visit_raising_two_issues_publishes_two_issue_events(
    client: httpx.AsyncClient, officer: Headers, stored: Stored, registry: SchemaRegistry
) -> None:
    visit_id = await _schedule(client, officer)
    r = await client.post(
        f"/v1/visits/{visit_id}/complete",
        json={
            "feedback": "critical",
            "opinions": "村口路灯坏了半年没人管",
            "issues": [
                {"kind": "help", "category": "public_safety.lighting", "summary": "路灯坏了"},
                {
                    "kind": "tip",
                    "category": "fraud.telecom",
                    "branch": "criminal",
                    "area_type": "rural",
                    "summary": "有人冒充民警打电话诈骗",
                },
            ],
        },
        headers=officer,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"
    assert [e["type"] for e in r.json()["events"]] == [
        "VisitCompleted",
        "IssueRaised",
        "IssueRaised",
    ]

    messages = [m for m in await stored.outbox() if m["topic"] == VISIT_TOPIC]
    assert [m["type"].split(".")[2] for m in messages] == [
        "VisitScheduled",
        "VisitCompleted",
        "IssueRaised",
        "IssueRaised",
    ]
    for m in messages:
        registry.validate(m["type"], m["payload"])
        assert m["key"] == visit_id
        for secret in ("王秀英", "13800138000", "路灯", "诈骗", "城南村"):
            assert secret not in m["raw"]
    issues = [m["payload"] for m in messages if m["type"].endswith("IssueRaised.v1")]
    assert issues[0]["source_id"] == issues[1]["source_id"] == visit_id
    assert issues[0]["issue_id"] != issues[1]["issue_id"]
    assert {i["kind"] for i in issues} == {"help", "tip"}
    assert all(i["raised_by"] == "p1001" and i["area_type"] == "rural" for i in issues)
    assert issues[0]["subject_id"] == messages[0]["payload"]["subject_id"]

    detail = await client.get(f"/v1/visits/{visit_id}", headers=officer)
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["visit"]["status"] == "completed" and body["visit"]["issues"] == 2
    assert [i["case_id"] for i in body["issues"]] == [i["issue_id"] for i in issues]
    revealed = str(body["history"])
    assert "路灯坏了" in revealed and "王秀英" in revealed


async def test_nobody_home_then_rescheduled_then_completed(
    client: httpx.AsyncClient, officer: Headers, stored: Stored, registry: SchemaRegistry
) -> None:
    visit_id = await _schedule(client, officer)
    r = await client.post(
        f"/v1/visits/{visit_id}/fail", json={"outcome": "nobody_home"}, headers=officer
    )
    assert r.status_code == 200 and r.json()["status"] == "failed", r.text
    again = await client.post(
        f"/v1/visits/{visit_id}/complete", json={"feedback": "supportive"}, headers=officer
    )
    stored.problem(again, 409)
    r = await client.post(
        f"/v1/visits/{visit_id}/reschedule",
        json={
            "planned_for": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
            "reason": "nobody_home",
            "officer_id": "p1002",
        },
        headers=officer,
    )
    assert r.status_code == 200 and r.json()["status"] == "scheduled", r.text
    r = await client.post(
        f"/v1/visits/{visit_id}/complete",
        json={"feedback": "indifferent", "mode": "phone", "expected_version": 3},
        headers=officer,
    )
    assert r.status_code == 200, r.text
    row = (await client.get(f"/v1/visits/{visit_id}", headers=officer)).json()["visit"]
    assert (row["status"], row["attempts"], row["officer_id"], row["mode"]) == (
        "completed",
        2,
        "p1002",
        "phone",
    )
    for m in await stored.outbox():
        registry.validate(m["type"], m["payload"])


async def test_bad_input_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, officer: Headers, token: TokenFactory, stored: Stored
) -> None:
    before = await stored.counts()
    cases: list[tuple[dict[str, Any], int]] = [
        (_visit(programme="unknown"), 422),
        (_visit(station="330603001"), 422),  # station outside the bureau
        (_visit(beat="33060200201"), 422),  # beat outside the station
        (_visit(planned_for="tomorrow"), 422),
        (_visit(person={"phone": "not a phone"}), 422),
        ({**_visit(), "extra": 1}, 422),
    ]
    for body, status in cases:
        stored.problem(await client.post("/v1/visits", json=body, headers=officer), status)
    stored.problem(await client.post("/v1/visits", json=_visit()), 401)
    other = token("officer", scopes=["330603"])
    stored.problem(await client.post("/v1/visits", json=_visit(), headers=other), 403)
    commander = token("commander")
    stored.problem(await client.post("/v1/visits", json=_visit(), headers=commander), 403)
    visit_id = await _schedule(client, officer)
    after_one = await stored.counts()
    too_many = [{"summary": "x"}] * 21
    for path, body in [
        ("complete", {"feedback": "supportive", "issues": too_many}),
        ("complete", {"feedback": "warm"}),
        ("fail", {"outcome": "completed"}),
        ("reschedule", {"planned_for": "2001-01-01T00:00:00+08:00", "reason": "other"}),
    ]:
        r = await client.post(f"/v1/visits/{visit_id}/{path}", json=body, headers=officer)
        stored.problem(r, 422)
    stored.problem(
        await client.post(
            f"/v1/visits/{'0' * 32}/complete", json={"feedback": "supportive"}, headers=officer
        ),
        404,
    )
    assert await stored.counts() == after_one
    assert after_one["events"] == before["events"] + 1


async def test_visit_history_of_a_beat_is_scoped_by_the_token(
    client: httpx.AsyncClient, officer: Headers, token: TokenFactory
) -> None:
    mine = await _schedule(client, officer)
    elsewhere = await _schedule(client, officer, beat=STATION + "02")
    other_station = await _schedule(
        client, officer, station=BUREAU + "002", beat=None, officer_id="p2001"
    )
    r = await client.get("/v1/visits", params={"unit": BEAT}, headers=officer)
    assert [v["visit_id"] for v in r.json()["items"]] == [mine]
    r = await client.get("/v1/visits", params={"unit": STATION}, headers=officer)
    assert {v["visit_id"] for v in r.json()["items"]} == {mine, elsewhere}
    station_only = token("officer", scopes=[STATION])
    r = await client.get("/v1/visits", headers=station_only)
    assert other_station not in {v["visit_id"] for v in r.json()["items"]}
    r = await client.get("/v1/visits", params={"unit": BUREAU + "002"}, headers=station_only)
    assert r.status_code == 403
    r = await client.get(f"/v1/visits/{other_station}", headers=station_only)
    assert r.status_code == 403
    mine_only = token("officer", subject="p2001")
    r = await client.get("/v1/visits", params={"officer": "me"}, headers=mine_only)
    assert [v["visit_id"] for v in r.json()["items"]] == [other_station]


async def test_engagement_with_opinions_raises_issues(
    client: httpx.AsyncClient, officer: Headers, stored: Stored, registry: SchemaRegistry
) -> None:
    body = {
        "bureau": BUREAU,
        "station": STATION,
        "type": "forum",
        "venue": "community",
        "area_type": "urban",
        "organiser": "p1001",
        "officer_ids": ["p1002"],
        "participants": 35,
        "opinions": [
            {"feedback": "supportive", "text": "巡逻多了，晚上安心"},
            {
                "feedback": "critical",
                "text": "小区门口违停严重",
                "person": {"name": "李明", "phone": "13900139000"},
                "issue": {"kind": "opinion", "category": "traffic.parking", "branch": "traffic"},
            },
        ],
    }
    bad = {**body, "opinions": [{"feedback": "critical", "issue": {"kind": "opinion"}}]}
    stored.problem(await client.post("/v1/engagements", json=bad, headers=officer), 422)
    r = await client.post("/v1/engagements", json=body, headers=officer)
    assert r.status_code == 422  # an issue needs its summary
    body["opinions"][1]["issue"]["summary"] = "违停堵住消防通道"
    r = await client.post("/v1/engagements", json=body, headers=officer)
    assert r.status_code == 201, r.text
    engagement_id = r.json()["engagement_id"]
    assert [e["type"] for e in r.json()["events"]] == [
        "EngagementHeld",
        "OpinionRecorded",
        "OpinionRecorded",
        "IssueRaised",
    ]
    r = await client.post(
        f"/v1/engagements/{engagement_id}/opinions",
        json={
            "opinions": [
                {
                    "feedback": "critical",
                    "text": "派出所办证排队太久",
                    "issue": {"kind": "service", "summary": "办证排队太久"},
                }
            ]
        },
        headers=officer,
    )
    assert r.status_code == 200, r.text
    messages = [m for m in await stored.outbox() if m["key"] == engagement_id]
    assert {m["type"] for m in messages} <= set(VISIT_TYPES)
    for m in messages:
        registry.validate(m["type"], m["payload"])
        for secret in ("李明", "13900139000", "违停", "排队", "巡逻"):
            assert secret not in m["raw"]
    issues = [m["payload"] for m in messages if m["type"].endswith("IssueRaised.v1")]
    assert [i["source_type"] for i in issues] == ["engagement", "engagement"]
    assert len({i["issue_id"] for i in issues}) == 2
    assert issues[0]["programme"] == "forum"
    held = next(m["payload"] for m in messages if m["type"].endswith("EngagementHeld.v1"))
    assert held["officer_ids"] == ["p1001", "p1002"]
    detail = (await client.get(f"/v1/engagements/{engagement_id}", headers=officer)).json()
    assert detail["engagement"]["opinions"] == 3 and detail["engagement"]["issues"] == 2
    listed = (await client.get("/v1/engagements", headers=officer)).json()["items"]
    assert [e["engagement_id"] for e in listed] == [engagement_id]
