"""The visits API against real PostgreSQL: officers' queues, attempts, answers, bad input."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from eventkit.consumer import IdempotentConsumer

if TYPE_CHECKING:
    from conftest import Headers, Intake, Stored

pytestmark = pytest.mark.integration

ConsumerFactory = Callable[..., IdempotentConsumer]
COMMENT = "民警态度很好，我的电话13912345678"


@pytest.fixture
def seed(make_consumer: ConsumerFactory, intake: Intake) -> Callable[..., Any]:
    """Feed intake cases to the consumer; returns the callback id of each."""
    consumer = make_consumer()

    async def make(**kw: Any) -> str:
        case_id, envelopes = intake.case(**kw)
        for env in envelopes:
            assert await consumer.handle(intake.record(env)) == "applied"
        kind = kw.get("kind", "alarm")
        return f"cb-{case_id}-{'petition_resolved' if kind == 'petition' else 'case_resolved'}"

    return make


async def test_an_officer_records_attempts_and_the_answer(
    client: httpx.AsyncClient, officer: Headers, seed: Callable[..., Any], stored: Stored
) -> None:
    cb = await seed()

    r = await client.post(
        f"/v1/callbacks/{cb}/attempts", json={"outcome": "unreachable"}, headers=officer
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/callbacks/{cb}/answer",
        json={"satisfaction": "satisfied", "security": "basically_safe", "comment": COMMENT},
        headers=officer,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "answered" and r.json()["version"] == 3

    detail = (await client.get(f"/v1/callbacks/{cb}", headers=officer)).json()
    assert detail["callback"]["satisfaction"] == "satisfied"
    assert detail["callback"]["attempts"] == 1
    assert [e["type"] for e in detail["history"]] == [
        "CallbackScheduled",
        "CallbackAttempted",
        "CallbackAnswered",
    ]
    assert detail["history"][2]["data"]["comment"] == COMMENT
    assert detail["history"][2]["actor"] == "p1001"
    # The comment is stored encrypted and never published.
    raw = await stored.pool.fetchval("SELECT string_agg(data::text, ' ') FROM events")
    assert COMMENT not in raw and "13912345678" not in raw
    assert all(
        "13912345678" not in m["raw"] and "comment" not in m["payload"]
        for m in await stored.outbox()
    )

    # A finished callback takes no more attempts.
    r = await client.post(
        f"/v1/callbacks/{cb}/attempts", json={"outcome": "reached"}, headers=officer
    )
    stored.problem(r, 409)


async def test_due_and_overdue_lists_follow_the_callers_scope(
    client: httpx.AsyncClient,
    officer: Headers,
    token: Callable[..., Headers],
    seed: Callable[..., Any],
    stored: Stored,
) -> None:
    # No quiet hours, so what is overdue does not depend on the hour the test runs.
    r = await client.put(
        "/v1/policies/330602",
        json={"quiet_start": "00:00", "quiet_end": "00:00"},
        headers=token("commander"),
    )
    assert r.status_code == 200, r.text
    now = datetime.now(UTC)
    overdue = await seed(received_at=now - timedelta(hours=5), resolved_at=now - timedelta(hours=4))
    suppressed = await seed(category="juvenile")
    later = await seed(kind="service", channel="window")  # due in 3 days

    async def ids(headers: Headers = officer, **params: Any) -> list[str]:
        r = await client.get("/v1/callbacks", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return [item["callback_id"] for item in r.json()["items"]]

    assert await ids(status="overdue") == [overdue]
    assert later not in await ids(status="due")
    assert await ids(status="suppressed") == [suppressed]
    assert set(await ids(station=stored.STATION)) == {overdue, suppressed, later}
    assert (await client.get("/v1/callbacks", headers=officer)).json()["items"][0][
        "overdue"
    ] is True
    other = token("officer", scopes=[stored.OTHER_BUREAU])
    assert await ids(other) == []
    stored.problem(await client.get(f"/v1/callbacks/{overdue}", headers=other), 403)
    stored.problem(
        await client.get("/v1/callbacks", params={"station": stored.STATION}, headers=other), 403
    )


async def test_a_callback_due_later_today_is_listed_as_due(
    client: httpx.AsyncClient,
    officer: Headers,
    token: Callable[..., Headers],
    seed: Callable[..., Any],
) -> None:
    # No quiet hours and a 2-minute window: due a minute from now.
    policy = {
        "quiet_start": "00:00",
        "quiet_end": "00:00",
        "triggers": [{"trigger": "case_resolved", "mode": "sms", "window_seconds": 120}],
    }
    r = await client.put("/v1/policies/330602", json=policy, headers=token("commander"))
    assert r.status_code == 200, r.text
    now = datetime.now(UTC)
    cb = await seed(received_at=now - timedelta(minutes=5), resolved_at=now - timedelta(minutes=1))

    due = (await client.get("/v1/callbacks?status=due", headers=officer)).json()["items"]
    overdue = (await client.get("/v1/callbacks?status=overdue", headers=officer)).json()["items"]

    assert [i["callback_id"] for i in due] == [cb]
    assert due[0]["overdue"] is False and due[0]["mode"] == "sms"
    assert overdue == []


async def test_an_idempotent_retry_writes_once(
    client: httpx.AsyncClient, officer: Headers, seed: Callable[..., Any], stored: Stored
) -> None:
    cb = await seed()
    headers = {**officer, "Idempotency-Key": "attempt-1"}

    first = await client.post(
        f"/v1/callbacks/{cb}/attempts", json={"outcome": "reached"}, headers=headers
    )
    second = await client.post(
        f"/v1/callbacks/{cb}/attempts", json={"outcome": "reached"}, headers=headers
    )

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert await stored.event_types(cb) == ["CallbackScheduled", "CallbackAttempted"]


async def test_bad_input_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient,
    officer: Headers,
    token: Callable[..., Headers],
    seed: Callable[..., Any],
    stored: Stored,
) -> None:
    cb = await seed()
    before = await stored.counts()
    missing = "cb-" + "0" * 32 + "-case_resolved"
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    cases: list[tuple[str, str, Any, Headers | None, int]] = [
        ("post", f"/v1/callbacks/{cb}/attempts", {"outcome": "maybe"}, officer, 422),
        ("post", f"/v1/callbacks/{cb}/attempts", {"outcome": "reached", "x": 1}, officer, 422),
        (
            "post",
            f"/v1/callbacks/{cb}/attempts",
            {"outcome": "reached", "occurred_at": future},
            officer,
            422,
        ),
        (
            "post",
            f"/v1/callbacks/{cb}/attempts",
            {"outcome": "reached", "occurred_at": "2024-01-01T00:00:00"},
            officer,
            422,
        ),
        (
            "post",
            f"/v1/callbacks/{cb}/attempts",
            {"outcome": "reached", "expected_version": 7},
            officer,
            409,
        ),
        ("post", f"/v1/callbacks/{cb}/attempts", [], officer, 422),
        (
            "post",
            f"/v1/callbacks/{cb}/answer",
            {"satisfaction": "满意", "security": "safe"},
            officer,
            422,
        ),
        ("post", f"/v1/callbacks/{cb}/answer", {"satisfaction": "satisfied"}, officer, 422),
        (
            "post",
            f"/v1/callbacks/{cb}/answer",
            {"satisfaction": "satisfied", "security": "safe", "comment": "a\x00b"},
            officer,
            422,
        ),
        (
            "post",
            f"/v1/callbacks/{cb}/answer",
            {"satisfaction": "satisfied", "security": "safe", "comment": "x" * 5000},
            officer,
            422,
        ),
        ("post", f"/v1/callbacks/{missing}/attempts", {"outcome": "reached"}, officer, 404),
        ("post", "/v1/callbacks/not-an-id/attempts", {"outcome": "reached"}, officer, 422),
        ("post", f"/v1/callbacks/{cb}/attempts", {"outcome": "reached"}, None, 401),
        (
            "post",
            f"/v1/callbacks/{cb}/attempts",
            {"outcome": "reached"},
            token("officer", scopes=[stored.OTHER_BUREAU]),
            403,
        ),
        ("post", f"/v1/callbacks/{cb}/attempts", {"outcome": "reached"}, token("partner"), 403),
        (
            "post",
            "/v1/opt-outs",
            {"subject_id": "13912345678", "bureau": stored.BUREAU},
            officer,
            422,
        ),
        ("post", "/v1/opt-outs", {"subject_id": stored.SUBJECT}, officer, 422),
        (
            "post",
            "/v1/opt-outs",
            {"subject_id": stored.SUBJECT, "bureau": stored.OTHER_BUREAU},
            officer,
            403,
        ),
        ("get", "/v1/callbacks?status=sometime", None, officer, 422),
        ("get", f"/v1/callbacks/{missing}", None, officer, 404),
        ("put", f"/v1/policies/{stored.BUREAU}", {"quiet_start": "25:00"}, token("commander"), 422),
        (
            "put",
            f"/v1/policies/{stored.BUREAU}",
            {"triggers": [{"trigger": "x"}]},
            token("commander"),
            422,
        ),
        ("put", f"/v1/policies/{stored.BUREAU}", {"timezone": "Asia/Shanghai"}, officer, 403),
    ]
    for method, url, body, headers, status in cases:
        kwargs: dict[str, Any] = {"headers": headers or {}}
        if body is not None:
            kwargs["json"] = body
        r = await client.request(method.upper(), url, **kwargs)
        stored.problem(r, status)

    assert await stored.counts() == before
    assert await stored.pool.fetchval("SELECT count(*) FROM bureau_policies") == 0


async def test_opt_outs_are_recorded_once(
    client: httpx.AsyncClient, officer: Headers, stored: Stored
) -> None:
    body = {"subject_id": stored.SUBJECT, "bureau": stored.BUREAU}

    first = await client.post("/v1/opt-outs", json=body, headers=officer)
    again = await client.post("/v1/opt-outs", json=body, headers=officer)

    assert (first.status_code, again.status_code) == (201, 200)
    assert (await stored.counts())["opt_outs"] == 1


async def test_my_callbacks_due_today_and_a_complaint_noted_on_the_phone(
    client: httpx.AsyncClient,
    token: Callable[..., Headers],
    seed: Callable[..., Any],
    stored: Stored,
) -> None:
    supervisor = token("supervisor", subject="s100")
    mine, theirs = (
        await seed(kind="service", channel="window"),
        await seed(kind="service", channel="window"),
    )
    # Due in 3 days: "due" today lists nothing, the open list has both.
    for cb, officer_id in ((mine, "p2001"), (theirs, "p2002")):
        r = await client.post(
            f"/v1/callbacks/{cb}/assign", json={"officer_id": officer_id}, headers=supervisor
        )
        assert r.status_code == 200, r.text
    again = await client.post(
        f"/v1/callbacks/{mine}/assign", json={"officer_id": "p2001"}, headers=supervisor
    )
    assert again.json()["events"] == []  # already theirs
    me = token("officer", subject="p2001")
    listed = await client.get(
        "/v1/callbacks", params={"assignee": "me", "status": "scheduled"}, headers=me
    )
    assert [c["callback_id"] for c in listed.json()["items"]] == [mine]
    assert listed.json()["items"][0]["assignee"] == "p2001"

    bad = await client.post(
        f"/v1/callbacks/{mine}/answer",
        json={"satisfaction": "dissatisfied", "security": "safe", "complaint_category": "rude"},
        headers=me,
    )
    stored.problem(bad, 422)
    r = await client.post(
        f"/v1/callbacks/{mine}/answer",
        json={
            "satisfaction": "dissatisfied",
            "security": "safe",
            "comment": "民警推诿，要投诉",
            "wants_complaint": True,
            "complaint_category": "inaction",
        },
        headers=me,
    )
    assert r.status_code == 200, r.text
    answered = [m for m in await stored.outbox() if m["type"].endswith("CallbackAnswered.v1")]
    assert answered[0]["payload"]["wants_complaint"] is True
    assert answered[0]["payload"]["complaint_category"] == "inaction"
    assert answered[0]["payload"]["via"] == "officer"
    assert "推诿" not in answered[0]["raw"]
    r = await client.post(
        f"/v1/callbacks/{mine}/assign", json={"officer_id": "p2003"}, headers=supervisor
    )
    stored.problem(r, 409)
