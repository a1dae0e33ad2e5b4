"""The intake API against real PostgreSQL: lifecycle, privacy, tenancy, bad input, races."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest
from eventkit.auth import issue_token
from eventkit.settings import KernelSettings
from jingmin_intake.application.handlers import CaseCommands
from jingmin_intake.application.sweeper import sweep_once

if TYPE_CHECKING:
    from conftest import Api, Headers, Stored, TokenFactory

pytestmark = pytest.mark.integration

BUREAU, OTHER, STATION = "330602", "330603", "330602001"
NAME, PHONE, ID_NUMBER = "王秀英", "13912345678", "33060219800101123X"
DEMAND = "楼下有人持刀争吵，请马上派人"
SECRETS = (
    NAME,
    PHONE,
    ID_NUMBER,
    DEMAND,
    "尽快制止，保护家人安全",
    "群众报警称有人持刀",
    "制止事态、保护现场",
    "已调解，双方达成和解",
    "回访时群众表示不满意",
)
ALL_COMMANDS = (
    "first-contact",
    "dispatch",
    "arrival",
    "service-visits",
    "transfer",
    "escalation",
    "resolution",
    "rejection",
    "reopen",
    "close",
)


def parse(t: str) -> datetime:
    return datetime.fromisoformat(t)


# ---- lifecycle and privacy ---------------------------------------------------------------


async def test_lifecycle_over_http_keeps_personal_data_encrypted(
    api: Api, client: httpx.AsyncClient, operator: Headers, stored: Stored
) -> None:
    r = await client.post("/v1/cases", json=api.body(), headers=operator)
    assert r.status_code == 201, r.text
    created = r.json()
    case_id = created["case_id"]
    assert r.headers["location"] == f"/v1/cases/{case_id}"
    assert created["status"] == "received" and created["version"] == 1
    assert [e["type"] for e in created["events"]] == ["CaseReceived"]

    steps = [
        ("first-contact", "assigned"),
        ("dispatch", "dispatched"),
        ("arrival", "on_scene"),
        ("resolution", "resolved"),
        ("close", "closed"),
        ("reopen", "reopened"),
        ("resolution", "resolved"),
        ("close", "closed"),
    ]
    for version, (action, status) in enumerate(steps, start=2):
        answer = await api.command(case_id, action)
        assert (answer["status"], answer["version"]) == (status, version), action

    detail = await api.get(case_id)
    assert detail["case"]["status"] == "closed" and detail["case"]["version"] == 9
    history = detail["history"]
    assert [e["type"] for e in history] == [
        "CaseReceived",
        "FirstContactAssigned",
        "CaseDispatched",
        "ArrivedOnScene",
        "CaseResolved",
        "CaseClosed",
        "CaseReopened",
        "CaseResolved",
        "CaseClosed",
    ]
    assert [e["version"] for e in history] == list(range(1, 10))
    received = history[0]["data"]
    assert received["person"] == {"name": NAME, "phone": PHONE, "id_number": ID_NUMBER}
    assert received["demand"] == DEMAND
    assert history[2]["data"]["reason"] == "群众报警称有人持刀"
    assert history[4]["data"]["reply"] == "已调解，双方达成和解"
    assert all(e["actor"] == "op-1" for e in history)
    assert detail["deadlines"]["dispatch"]["met_at"] is not None
    assert detail["deadlines"]["arrival"]["met_at"] is not None

    rows = await stored.pool.fetch(
        "SELECT data::text AS data, metadata::text AS metadata FROM events WHERE stream_id = $1",
        case_id,
    )
    assert len(rows) == 9
    stored_text = "".join(r["data"] + r["metadata"] for r in rows)
    for secret in SECRETS:
        assert secret not in stored_text
    assert '"enc": "aesgcm1"' in stored_text or '"enc":"aesgcm1"' in stored_text

    subject_id = received["subject_id"]
    assert subject_id.startswith("sub_")
    outbox = await stored.outbox(case_id)
    assert len(outbox) == 9
    for row in outbox:
        for secret in SECRETS:
            assert secret not in row["raw"]
        assert "aesgcm1" not in row["raw"]
        assert '"ct"' not in row["raw"]
    first = outbox[0]["payload"]
    assert first["subject_id"] == subject_id
    assert "person" not in first and "demand" not in first


async def test_a_case_without_a_person_is_still_recorded(api: Api) -> None:
    created = await api.receive(person=None, kind="consultation", channel="online")
    detail = await api.get(created["case_id"])
    assert detail["history"][0]["data"]["demand"] == DEMAND
    assert set(detail["deadlines"]) == {"first_contact", "resolution"}


# ---- tenancy -----------------------------------------------------------------------------


async def test_bureau_isolation(
    api: Api, client: httpx.AsyncClient, token: TokenFactory, stored: Stored
) -> None:
    city = token("supervisor", scopes=["3306"], subject="city-1")
    own = await api.receive()
    theirs = await api.receive(headers=city, bureau=OTHER)
    before = await stored.counts()

    local = token("supervisor", "intake_operator", scopes=[BUREAU], subject="local-1")
    r = await client.get(f"/v1/cases/{theirs['case_id']}", headers=local)
    api.problem(r, 403)
    r = await client.get("/v1/cases", params={"bureau": OTHER}, headers=local)
    api.problem(r, 403)
    r = await client.get("/v1/cases", params={"station": OTHER + "001"}, headers=local)
    api.problem(r, 403)
    for action in ALL_COMMANDS:
        r = await client.post(
            f"/v1/cases/{theirs['case_id']}/{action}",
            json=api.COMMAND_BODIES[action],
            headers=local,
        )
        api.problem(r, 403)
    r = await client.post("/v1/cases", json=api.body(bureau=OTHER), headers=local)
    api.problem(r, 403)
    assert await stored.counts() == before

    page = await api.list(headers=local)
    assert [c["case_id"] for c in page["items"]] == [own["case_id"]]
    page = await api.list(headers=city)
    assert {c["case_id"] for c in page["items"]} == {own["case_id"], theirs["case_id"]}
    assert (await api.list(headers=city, bureau=OTHER))["items"][0]["bureau"] == OTHER
    for case_id in (own["case_id"], theirs["case_id"]):
        assert (await api.get(case_id, headers=city))["case"]["case_id"] == case_id
    # The city token may act on either county's case.
    await api.command(theirs["case_id"], "first-contact", headers=city)


# ---- authentication and roles ------------------------------------------------------------


async def test_no_token_is_401_with_a_bearer_challenge(api: Api, client: httpx.AsyncClient) -> None:
    for r in (await client.get("/v1/cases"), await client.post("/v1/cases", json=api.body())):
        api.problem(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")


async def test_expired_or_foreign_tokens_are_401(
    api: Api, client: httpx.AsyncClient, settings: KernelSettings, stored: Stored
) -> None:
    expired = issue_token(
        settings,
        subject="op-1",
        roles=["intake_operator"],
        scopes=[BUREAU],
        ttl=timedelta(minutes=1),
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    foreign = issue_token(
        settings.model_copy(update={"jwt_audience": "someone-else"}),
        subject="op-1",
        roles=["intake_operator"],
        scopes=[BUREAU],
    )
    for bad in (expired, foreign, "not-a-jwt"):
        headers = {"Authorization": f"Bearer {bad}"}
        r = await client.post("/v1/cases", json=api.body(), headers=headers)
        api.problem(r, 401)
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        api.problem(await client.get("/v1/cases", headers=headers), 401)
    assert (await stored.counts())["events"] == 0


async def test_partner_cannot_write_or_read_cases(
    api: Api, client: httpx.AsyncClient, token: TokenFactory, stored: Stored
) -> None:
    case_id = (await api.receive())["case_id"]
    before = await stored.counts()
    partner = token("partner", subject="partner-12345")
    api.problem(await client.post("/v1/cases", json=api.body(), headers=partner), 403)
    for action in ALL_COMMANDS:
        r = await client.post(
            f"/v1/cases/{case_id}/{action}", json=api.COMMAND_BODIES[action], headers=partner
        )
        api.problem(r, 403)
    api.problem(await client.get(f"/v1/cases/{case_id}", headers=partner), 403)
    api.problem(await client.get("/v1/cases", headers=partner), 403)
    assert await stored.counts() == before


async def test_commander_reads_but_does_not_write_cases(
    api: Api, client: httpx.AsyncClient, token: TokenFactory
) -> None:
    case_id = (await api.receive())["case_id"]
    commander = token("commander", subject="chief")
    assert (await api.get(case_id, headers=commander))["case"]["status"] == "received"
    r = await client.post(
        f"/v1/cases/{case_id}/first-contact",
        json=api.COMMAND_BODIES["first-contact"],
        headers=commander,
    )
    api.problem(r, 403)


# ---- bad input writes nothing ------------------------------------------------------------


async def test_bad_input_is_a_problem_and_writes_nothing(
    api: Api, client: httpx.AsyncClient, operator: Headers, stored: Stored
) -> None:
    open_case = (await api.receive())["case_id"]
    closed_case = (await api.receive())["case_id"]
    await api.command(closed_case, "resolution")
    await api.command(closed_case, "close")
    before = await stored.counts()

    def future(minutes: int) -> str:
        return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()

    attempts: list[tuple[str, str, Any, int]] = [
        ("malformed JSON", "/v1/cases", b'{"bureau": "330602", ', 400),
        ("unknown field", "/v1/cases", api.body(colour="red"), 422),
        ("unknown field in person", "/v1/cases", api.body(person={"nick": "x"}), 422),
        ("wrong enum", "/v1/cases", api.body(channel="carrier_pigeon"), 422),
        (
            "missing demand",
            "/v1/cases",
            {k: v for k, v in api.body().items() if k != "demand"},
            422,
        ),
        ("station not in bureau", "/v1/cases", api.body(station="330603001"), 422),
        ("naive occurred_at", "/v1/cases", api.body(occurred_at="2024-05-01T08:00:00"), 422),
        ("too large", "/v1/cases", api.body(demand="报" * 30_000), 413),
        ("occurred_at in the future", "/v1/cases", api.body(occurred_at=future(10)), 422),
        (
            "resolve a closed case",
            f"/v1/cases/{closed_case}/resolution",
            api.COMMAND_BODIES["resolution"],
            409,
        ),
        ("arrive before dispatch", f"/v1/cases/{open_case}/arrival", {}, 409),
        ("close an open case", f"/v1/cases/{open_case}/close", {}, 409),
        (
            "stale expected_version",
            f"/v1/cases/{open_case}/first-contact",
            {**api.COMMAND_BODIES["first-contact"], "expected_version": 0},
            409,
        ),
        (
            "command in the future",
            f"/v1/cases/{open_case}/dispatch",
            {**api.COMMAND_BODIES["dispatch"], "occurred_at": future(10)},
            422,
        ),
        (
            "command before the previous event",
            f"/v1/cases/{open_case}/dispatch",
            {**api.COMMAND_BODIES["dispatch"], "occurred_at": api.ago(days=1)},
            422,
        ),
        ("service visit on an alarm", f"/v1/cases/{open_case}/service-visits", {}, 422),
        (
            "alarm rejected for 'other'",
            f"/v1/cases/{open_case}/rejection",
            {"reason": "other", "explanation": "说不清"},
            422,
        ),
        (
            "alarm rejected without explanation",
            f"/v1/cases/{open_case}/rejection",
            {"reason": "prank"},
            422,
        ),
        ("NUL in free text", "/v1/cases", api.body(demand="有人\u0000打架"), 422),
        ("NUL in a reference", "/v1/cases", api.body(source_ref="cad\u0000"), 422),
        ("free text as a reference", "/v1/cases", api.body(source_ref="王秀英 的来电"), 422),
        ("year 1", "/v1/cases", api.body(occurred_at="0001-01-01T00:00:00+14:00"), 422),
        (
            "year 9999 commitment",
            "/v1/cases",
            api.body(kind="service", committed_due_at="9999-12-31T23:59:59-14:00"),
            422,
        ),
        (
            "commitment before receipt",
            "/v1/cases",
            api.body(
                kind="service", occurred_at=api.ago(hours=1), committed_due_at=api.ago(hours=2)
            ),
            422,
        ),
        ("unknown case", f"/v1/cases/{'f' * 32}/resolution", api.COMMAND_BODIES["resolution"], 404),
        (
            "malformed case id",
            "/v1/cases/not-a-case/resolution",
            api.COMMAND_BODIES["resolution"],
            422,
        ),
    ]
    for label, path, payload, status in attempts:
        if isinstance(payload, bytes):
            r = await client.post(
                path, content=payload, headers={**operator, "Content-Type": "application/json"}
            )
        else:
            r = await client.post(path, json=payload, headers=operator)
        assert r.status_code == status, f"{label}: {r.status_code} {r.text}"
        api.problem(r, status)
        assert await stored.counts() == before, label

    body = api.problem(await client.get(f"/v1/cases/{'f' * 32}", headers=operator), 404)
    assert body["title"]
    bad_header = {**operator, "X-Correlation-Id": "a b"}
    api.problem(await client.post("/v1/cases", json=api.body(), headers=bad_header), 400)
    extreme = base64.urlsafe_b64encode(b"0001-01-01T00:00:00+14:00|x").decode()
    api.problem(await client.get("/v1/cases", params={"cursor": extreme}, headers=operator), 400)
    assert await stored.counts() == before


async def test_a_station_scope_reaches_its_own_station_only(
    api: Api, client: httpx.AsyncClient, token: TokenFactory
) -> None:
    ours = await api.receive()
    neighbours = await api.receive(station=BUREAU + "002")
    station = token("intake_operator", scopes=[STATION], subject="station-1")
    mine = await api.receive(headers=station)
    listed = {c["case_id"] for c in (await api.list(headers=station))["items"]}
    assert listed == {ours["case_id"], mine["case_id"]}
    await api.command(ours["case_id"], "first-contact", headers=station)
    r = await client.get(f"/v1/cases/{neighbours['case_id']}", headers=station)
    api.problem(r, 403)
    r = await client.post("/v1/cases", json=api.body(station=BUREAU + "002"), headers=station)
    api.problem(r, 403)


async def test_policy_values_are_bounded(
    client: httpx.AsyncClient, token: TokenFactory, api: Api
) -> None:
    commander = token("commander")
    r = await client.put(
        f"/v1/policies/{BUREAU}", json={"dispatch_seconds": 10**12}, headers=commander
    )
    api.problem(r, 422)
    await api.receive()


async def test_validation_problems_name_the_field_but_do_not_echo_input(
    api: Api, client: httpx.AsyncClient, operator: Headers
) -> None:
    r = await client.post("/v1/cases", json=api.body(colour=NAME), headers=operator)
    body = api.problem(r, 422)
    assert any(e["loc"][-1] == "colour" for e in body["errors"])
    assert NAME not in r.text


# ---- idempotency -------------------------------------------------------------------------


async def test_idempotent_retry_returns_the_first_answer(
    api: Api, client: httpx.AsyncClient, operator: Headers, stored: Stored
) -> None:
    headers = {**operator, "Idempotency-Key": "call-2024-0001"}
    first = await client.post("/v1/cases", json=api.body(), headers=headers)
    again = await client.post("/v1/cases", json=api.body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["location"] == first.headers["location"]
    case_id = first.json()["case_id"]
    assert await stored.event_types(case_id) == ["CaseReceived"]
    assert (await stored.counts())["cases"] == 1

    changed = await client.post("/v1/cases", json=api.body(demand="另一件事"), headers=headers)
    api.problem(changed, 422)
    assert (await stored.counts())["events"] == 1

    # The same holds for a command: a retried dispatch dispatches once.
    cmd = {**operator, "Idempotency-Key": "dispatch-1"}
    url = f"/v1/cases/{case_id}/dispatch"
    d1 = await client.post(url, json=api.COMMAND_BODIES["dispatch"], headers=cmd)
    d2 = await client.post(url, json=api.COMMAND_BODIES["dispatch"], headers=cmd)
    assert d1.status_code == d2.status_code == 200
    assert d1.json() == d2.json()
    assert await stored.event_types(case_id) == ["CaseReceived", "CaseDispatched"]


async def test_concurrent_duplicates_create_one_case(
    api: Api, client: httpx.AsyncClient, operator: Headers, stored: Stored
) -> None:
    headers = {**operator, "Idempotency-Key": "burst-1"}
    body = api.body()
    responses = await asyncio.gather(
        *(client.post("/v1/cases", json=body, headers=headers) for _ in range(10))
    )
    assert [r.status_code for r in responses] == [201] * 10
    assert len({r.json()["case_id"] for r in responses}) == 1
    counts = await stored.counts()
    assert (counts["cases"], counts["events"], counts["outbox"]) == (1, 1, 1)


async def test_a_key_belongs_to_its_caller(
    api: Api, client: httpx.AsyncClient, token: TokenFactory, stored: Stored
) -> None:
    first = await client.post(
        "/v1/cases", json=api.body(), headers={**token(subject="op-1"), "Idempotency-Key": "k"}
    )
    second = await client.post(
        "/v1/cases", json=api.body(), headers={**token(subject="op-2"), "Idempotency-Key": "k"}
    )
    assert first.status_code == second.status_code == 201
    assert first.json()["case_id"] != second.json()["case_id"]
    assert (await stored.counts())["cases"] == 2


# ---- concurrency -------------------------------------------------------------------------


async def test_parallel_commands_on_one_case_succeed_or_conflict_cleanly(
    api: Api, client: httpx.AsyncClient, operator: Headers, stored: Stored
) -> None:
    case_id = (await api.receive())["case_id"]
    actions = [
        "first-contact",
        "dispatch",
        "arrival",
        "transfer",
        "escalation",
        "resolution",
        "rejection",
        "reopen",
        "close",
        "dispatch",
    ]
    responses = await asyncio.gather(
        *(
            client.post(f"/v1/cases/{case_id}/{a}", json=api.COMMAND_BODIES[a], headers=operator)
            for a in actions
        )
    )
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 409}, [
        (a, r.status_code, r.text) for a, r in zip(actions, responses, strict=True)
    ]
    assert 200 in codes
    for r in responses:
        if r.status_code == 409:
            api.problem(r, 409)
    appended = sum(len(r.json()["events"]) for r in responses if r.status_code == 200)
    versions = await stored.versions(case_id)
    assert versions == list(range(1, appended + 2))  # no gaps, nothing lost
    detail = await api.get(case_id)
    assert detail["case"]["version"] == versions[-1]
    # Each successful answer's events are exactly the ones stored at those versions.
    answered = sorted(
        e["version"] for r in responses if r.status_code == 200 for e in r.json()["events"]
    )
    assert answered == versions[1:]
    # One message per event on the case topic (a transfer to 12345 also feeds the hotline's).
    outbox = [m for m in await stored.outbox(case_id) if "Hotline" not in m["type"]]
    assert len(outbox) == len(versions)


async def test_racing_identical_commands_take_effect_once(
    api: Api, client: httpx.AsyncClient, operator: Headers, stored: Stored
) -> None:
    case_id = (await api.receive())["case_id"]
    url = f"/v1/cases/{case_id}/first-contact"
    responses = await asyncio.gather(
        *(
            client.post(url, json=api.COMMAND_BODIES["first-contact"], headers=operator)
            for _ in range(10)
        )
    )
    assert sorted(r.status_code for r in responses) == [200] + [409] * 9
    assert await stored.event_types(case_id) == ["CaseReceived", "FirstContactAssigned"]

    url = f"/v1/cases/{case_id}/dispatch"
    body = {**api.COMMAND_BODIES["dispatch"], "expected_version": 2}
    responses = await asyncio.gather(
        *(client.post(url, json=body, headers=operator) for _ in range(10))
    )
    assert sorted(r.status_code for r in responses) == [200] + [409] * 9
    assert await stored.versions(case_id) == [1, 2, 3]


# ---- list filters ------------------------------------------------------------------------


async def test_list_filters_and_pagination(
    api: Api, client: httpx.AsyncClient, operator: Headers
) -> None:
    late = (await api.receive(occurred_at=api.ago(minutes=10)))["case_id"]
    online = (await api.receive(kind="consultation", channel="online", station="330602002"))[
        "case_id"
    ]
    service = (await api.receive(kind="service", channel="window", person=None))["case_id"]
    await api.command(service, "resolution")
    hotline = (await api.receive(channel="hotline", station="330602002"))["case_id"]
    await api.command(hotline, "dispatch")

    async def ids(**params: Any) -> set[str]:
        return {c["case_id"] for c in (await api.list(**params))["items"]}

    assert await ids() == {late, online, service, hotline}
    assert await ids(status="resolved") == {service}
    assert await ids(status="dispatched") == {hotline}
    assert await ids(kind="alarm") == {late, hotline}
    assert await ids(channel="online") == {online}
    assert await ids(station="330602001") == {late, service}
    assert await ids(bureau=BUREAU, kind="consultation") == {online}
    assert await ids(overdue="true") == {late}
    assert await ids(overdue="false") == {online, service, hotline}
    (item,) = (await api.list(overdue="true"))["items"]
    assert item["overdue"] is True and item["next_due_at"] is not None

    seen: list[str] = []
    received: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await api.list(**params)
        assert len(page["items"]) <= 2
        seen += [c["case_id"] for c in page["items"]]
        received += [c["received_at"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert cursor is None
    assert sorted(seen) == sorted({late, online, service, hotline})
    assert received == sorted(received, key=parse, reverse=True)
    assert seen[-1] == late

    api.problem(await client.get("/v1/cases", params={"status": "lost"}, headers=operator), 422)
    api.problem(await client.get("/v1/cases", params={"cursor": "%%%"}, headers=operator), 400)


async def test_pagination_does_not_skip_cases_received_at_the_same_instant(api: Api) -> None:
    same = api.ago(minutes=1)
    created = {(await api.receive(occurred_at=same))["case_id"] for _ in range(5)}
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = await api.list(limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [c["case_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(created)


# ---- sweeper -----------------------------------------------------------------------------


async def test_sweeper_breaches_each_missed_dispatch_exactly_once(
    api: Api, stored: Stored, make_commands: Callable[[], CaseCommands]
) -> None:
    missed = [(await api.receive(occurred_at=api.ago(minutes=10)))["case_id"] for _ in range(3)]
    on_time = (await api.receive())["case_id"]
    late = (await api.receive(occurred_at=api.ago(minutes=10)))["case_id"]
    answer = await api.command(late, "dispatch")
    assert [e["type"] for e in answer["events"]] == ["DeadlineBreached", "CaseDispatched"]

    a, b = make_commands(), make_commands()
    assert await sweep_once(a) == 0  # recorded just now: the next step may be on its way
    await stored.age_promises(minutes=5)
    recorded = await asyncio.gather(sweep_once(a), sweep_once(b))
    assert sum(recorded) == 3
    assert await sweep_once(a) == 0
    assert await sweep_once(make_commands()) == 0  # a restarted sweeper

    for case_id in missed:
        assert await stored.breaches(case_id) == ["dispatch"]
        detail = await api.get(case_id)
        dispatch = detail["deadlines"]["dispatch"]
        assert dispatch["breached_at"] == dispatch["due_at"]
        assert dispatch["met_at"] is None
        assert detail["case"]["overdue"] is True
    assert await stored.breaches(late) == ["dispatch"]
    assert await stored.breaches(on_time) == []
    outbox_breaches = [
        m for m in await stored.outbox() if m["type"] == "jingmin.intake.DeadlineBreached.v1"
    ]
    assert len(outbox_breaches) == 4

    # Dispatching a swept case later meets the promise but records no second breach.
    await api.command(missed[0], "dispatch")
    assert await stored.breaches(missed[0]) == ["dispatch"]
    assert await sweep_once(make_commands()) == 0


async def test_sweeper_racing_late_dispatches_still_breaches_once(
    api: Api,
    client: httpx.AsyncClient,
    operator: Headers,
    stored: Stored,
    make_commands: Callable[[], CaseCommands],
) -> None:
    cases = [(await api.receive(occurred_at=api.ago(minutes=10)))["case_id"] for _ in range(6)]
    await stored.age_promises(minutes=5)
    dispatches = [
        client.post(
            f"/v1/cases/{c}/dispatch", json=api.COMMAND_BODIES["dispatch"], headers=operator
        )
        for c in cases
    ]
    results = await asyncio.gather(
        sweep_once(make_commands()), sweep_once(make_commands()), *dispatches
    )
    assert [r.status_code for r in results[2:]] == [200] * len(cases)
    for case_id in cases:
        assert (await stored.event_types(case_id)).count("DeadlineBreached") == 1, case_id
        assert await stored.versions(case_id) == [1, 2, 3]
    assert await sweep_once(make_commands()) == 0


async def test_a_case_entered_after_the_fact_is_not_breached_before_its_next_step(
    api: Api, stored: Stored, make_commands: Callable[[], CaseCommands]
) -> None:
    """A backfilled case (received 10 minutes ago, entered now) has its dispatch promise due
    already; the sweeper leaves it the bureau's grace, by the server's clock, for the
    dispatch entered a moment later. Whether that dispatch was on time is then decided by
    the event times alone, as if the sweeper had never run."""
    on_time = await api.receive(occurred_at=api.ago(minutes=10))
    never = (await api.receive(occurred_at=api.ago(minutes=10)))["case_id"]
    assert await sweep_once(make_commands()) == 0
    dispatched = await api.command(
        on_time["case_id"], "dispatch", occurred_at=api.ago(minutes=10, seconds=-30)
    )
    assert [e["type"] for e in dispatched["events"]] == ["CaseDispatched"]
    assert await stored.event_types(on_time["case_id"]) == ["CaseReceived", "CaseDispatched"]

    await stored.age_promises(minutes=2)  # the grace (60 s by default) has passed
    assert await sweep_once(make_commands()) >= 1

    assert "dispatch" in await stored.breaches(never)
    # Its arrival promise (set by the dispatch) may be breached by now; the dispatch was not.
    assert "dispatch" not in await stored.breaches(on_time["case_id"])


# ---- erasure -----------------------------------------------------------------------------


async def test_erasing_a_person_shreds_their_fields_and_keeps_the_facts(
    api: Api, client: httpx.AsyncClient, token: TokenFactory, stored: Stored
) -> None:
    case_id = (await api.receive())["case_id"]
    await api.command(case_id, "dispatch")
    before = await api.get(case_id)
    subject_id = before["history"][0]["data"]["subject_id"]
    counts = await stored.counts()

    for role in ("intake_operator", "supervisor", "commander"):
        r = await client.delete(f"/v1/subjects/{subject_id}", headers=token(role))
        api.problem(r, 403)
    r = await client.delete(
        f"/v1/subjects/{subject_id}", headers=token("admin", scopes=[OTHER], subject="admin-x")
    )
    api.problem(r, 403)
    assert (await api.get(case_id))["history"][0]["data"]["demand"] == DEMAND

    admin = token("admin", subject="admin-1")
    r = await client.delete(
        f"/v1/subjects/{subject_id}", params={"reason": "subject_request"}, headers=admin
    )
    assert r.status_code == 204, r.text

    after = await api.get(case_id)
    person = after["history"][0]["data"]["person"]
    assert person == {"name": "[erased]", "phone": "[erased]", "id_number": "[erased]"}
    assert after["history"][0]["data"]["demand"] == "[erased]"
    assert after["history"][1]["data"]["reason"] == "[erased]"
    assert after["case"] == before["case"]
    assert after["deadlines"] == before["deadlines"]
    assert [
        (e["type"], e["version"], e["occurred_at"], e["recorded_at"]) for e in after["history"]
    ] == [(e["type"], e["version"], e["occurred_at"], e["recorded_at"]) for e in before["history"]]
    assert await stored.counts() == counts
    # A second erasure changes nothing and still answers 204.
    assert (await client.delete(f"/v1/subjects/{subject_id}", headers=admin)).status_code == 204


async def test_an_erased_caller_who_calls_110_again_is_still_recorded(
    api: Api, client: httpx.AsyncClient, token: TokenFactory, stored: Stored
) -> None:
    """有警必接: erasure forgets the person's data; it must not make the police refuse them."""
    first = (await api.receive())["case_id"]
    subject_id = (await api.get(first))["history"][0]["data"]["subject_id"]
    r = await client.delete(f"/v1/subjects/{subject_id}", headers=token("admin"))
    assert r.status_code == 204
    again = await client.post("/v1/cases", json=api.body(), headers=token("intake_operator"))
    assert again.status_code == 201, again.text


async def test_an_erased_persons_open_case_can_still_be_finished(
    api: Api, client: httpx.AsyncClient, token: TokenFactory, stored: Stored
) -> None:
    """Erasure forgets the person; it must not leave their open alarm unresolvable forever."""
    case_id = (await api.receive())["case_id"]
    subject_id = (await api.get(case_id))["history"][0]["data"]["subject_id"]
    r = await client.delete(f"/v1/subjects/{subject_id}", headers=token("admin"))
    assert r.status_code == 204
    for action in ("dispatch", "arrival", "resolution", "close"):
        await api.command(case_id, action)
    assert (await api.get(case_id))["case"]["status"] == "closed"
    rows = await stored.pool.fetch(
        "SELECT data::text AS d FROM events WHERE stream_id = $1", case_id
    )
    assert not any(secret in r["d"] for r in rows for secret in SECRETS)


# ---- policies ----------------------------------------------------------------------------


async def test_commander_changes_the_dispatch_deadline(
    api: Api, client: httpx.AsyncClient, token: TokenFactory
) -> None:
    url = f"/v1/policies/{BUREAU}"
    r = await client.put(url, json={"dispatch_seconds": 120}, headers=token("intake_operator"))
    api.problem(r, 403)
    r = await client.put(
        f"/v1/policies/{OTHER}", json={"dispatch_seconds": 120}, headers=token("commander")
    )
    api.problem(r, 403)
    r = await client.put(url, json={"dispatch_secs": 120}, headers=token("commander"))
    api.problem(r, 422)
    r = await client.put(url, json={"dispatch_seconds": 0}, headers=token("commander"))
    api.problem(r, 422)

    r = await client.put(url, json={"dispatch_seconds": 120}, headers=token("commander"))
    assert r.status_code == 200, r.text
    assert r.json()["dispatch_seconds"] == 120
    assert r.json()["arrival_seconds"]["urban"] == 300  # untouched fields keep their value
    r = await client.get(url, headers=token("intake_operator"))
    assert r.json()["dispatch_seconds"] == 120

    occurred = datetime.now(UTC).replace(microsecond=0)
    case_id = (await api.receive(occurred_at=occurred.isoformat()))["case_id"]
    due = parse((await api.get(case_id))["deadlines"]["dispatch"]["due_at"])
    assert due == occurred + timedelta(seconds=120)
    # Another bureau keeps the default.
    city = token("intake_operator", scopes=["3306"])
    other = (await api.receive(headers=city, bureau=OTHER, occurred_at=occurred.isoformat()))[
        "case_id"
    ]
    due = parse((await api.get(other, headers=city))["deadlines"]["dispatch"]["due_at"])
    assert due == occurred + timedelta(seconds=60)


async def test_a_zero_sweep_grace_is_answered_not_a_500(
    api: Api, client: httpx.AsyncClient, token: TokenFactory
) -> None:
    """The API schema allows sweep_grace_seconds >= 0; the domain policy refuses 0.

    Either answer is defensible (0 = breach as soon as due; or 422 as for every other
    duration), but a commander must never get a 500, and the stored policy must match.
    """
    url = f"/v1/policies/{BUREAU}"
    r = await client.put(url, json={"sweep_grace_seconds": 0}, headers=token("commander"))
    assert r.status_code in (200, 422), r.text
    expected = 0 if r.status_code == 200 else 60
    if r.status_code == 422:
        api.problem(r, 422)
    r = await client.get(url, headers=token("commander"))
    assert r.status_code == 200
    assert json.loads(r.text)["sweep_grace_seconds"] == expected


async def test_the_callers_trace_continues_onto_the_topic(
    client: httpx.AsyncClient, operator: Headers, db: asyncpg.Pool, api: Api
) -> None:
    # W3C trace context from the HTTP request is stored with the event and published as
    # ce_traceparent, so one trace spans HTTP -> store -> topic -> consumer.
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {**operator, "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    r = await client.post("/v1/cases", json=api.body(), headers=headers)
    assert r.status_code == 201, r.text
    raw = await db.fetchval("SELECT headers::text FROM outbox")
    published = json.loads(raw)["ce_traceparent"]
    assert published.split("-")[1] == trace_id
    stored = await db.fetchval("SELECT metadata->>'traceparent' FROM events")
    assert stored == published
