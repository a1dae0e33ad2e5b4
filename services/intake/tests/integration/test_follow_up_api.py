"""Enforcement decisions and classifications over HTTP: roles, bureau scope, idempotency, 4xx."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import Api, Headers, Stored, TokenFactory

pytestmark = pytest.mark.integration

ROUTES = ("enforcement-decision", "classification")


async def test_an_officer_records_both_facts_and_the_topic_carries_no_free_text(
    api: Api, token: TokenFactory, stored: Stored
) -> None:
    case_id = (await api.receive())["case_id"]
    await api.command(case_id, "resolution")
    officer = token("officer", subject="p1001")

    decided = await api.command(case_id, "enforcement-decision", headers=officer)
    classified = await api.command(case_id, "classification", headers=token("supervisor"))

    assert decided["status"] == classified["status"] == "resolved"
    assert await stored.event_types(case_id) == [
        "CaseReceived",
        "CaseResolved",
        "EnforcementDecided",
        "CaseClassified",
    ]
    messages = {m["type"]: m for m in await stored.outbox(case_id)}
    enforcement = messages["jingmin.intake.EnforcementDecided.v1"]
    assert enforcement["payload"]["decision"] == "administrative_penalty"
    assert "note" not in enforcement["payload"]
    assert "处罚款" not in enforcement["raw"]
    classification = messages["jingmin.intake.CaseClassified.v1"]["payload"]
    assert (classification["crime_victim"], classification["preventable"]) == (True, True)
    assert classification["category"] == "theft.burglary"
    # The note is kept, encrypted, in intake's own store: the officer reads it back.
    history = (await api.get(case_id, headers=officer))["history"]
    [event] = [e for e in history if e["type"] == "EnforcementDecided"]
    assert event["data"]["note"] == "处罚款500元"
    stored_note = await stored.pool.fetchval(
        "SELECT data->>'note' FROM events WHERE stream_id = $1 AND type = 'EnforcementDecided'",
        case_id,
    )
    assert "处罚款" not in (stored_note or "")


@pytest.mark.parametrize("route", ROUTES)
async def test_only_officers_and_supervisors_of_the_bureau_may_record(
    api: Api, token: TokenFactory, stored: Stored, route: str
) -> None:
    case_id = (await api.receive())["case_id"]
    before = await stored.counts()
    for roles in (("intake_operator",), ("commander",), ("partner",)):
        r = await api.client.post(
            f"/v1/cases/{case_id}/{route}", json=api.COMMAND_BODIES[route], headers=token(*roles)
        )
        api.problem(r, 403)
    foreign = token("officer", "supervisor", scopes=[api.OTHER_BUREAU])
    r = await api.client.post(
        f"/v1/cases/{case_id}/{route}", json=api.COMMAND_BODIES[route], headers=foreign
    )
    assert r.status_code in (403, 404), r.text
    r = await api.client.post(f"/v1/cases/{case_id}/{route}", json=api.COMMAND_BODIES[route])
    api.problem(r, 401)
    assert await stored.counts() == before


@pytest.mark.parametrize("route", ROUTES)
async def test_a_retry_with_the_same_key_records_once(
    api: Api, token: TokenFactory, stored: Stored, route: str
) -> None:
    case_id = (await api.receive())["case_id"]
    headers = {**token("officer"), "Idempotency-Key": f"{route}-1"}
    url = f"/v1/cases/{case_id}/{route}"
    first = await api.client.post(url, json=api.COMMAND_BODIES[route], headers=headers)
    again = await api.client.post(url, json=api.COMMAND_BODIES[route], headers=headers)
    assert first.status_code == again.status_code == 200, first.text
    assert first.json() == again.json()
    assert len(await stored.event_types(case_id)) == 2
    changed = {**api.COMMAND_BODIES[route], "note": "另一件事"}
    api.problem(await api.client.post(url, json=changed, headers=headers), 422)
    assert len(await stored.event_types(case_id)) == 2


async def test_bad_input_is_a_problem_and_writes_nothing(
    api: Api, token: TokenFactory, stored: Stored
) -> None:
    officer = token("officer")
    case_id = (await api.receive())["case_id"]
    await api.command(case_id, "enforcement-decision", headers=officer)
    complaint_id = (await api.receive(kind="complaint", category="attitude"))["case_id"]
    missing = "0" * 32
    before = await stored.counts()
    attempts: list[tuple[str, str, Any, int]] = [
        ("unknown decision", case_id, "enforcement-decision", {"decision": "flogging"}, 422),
        ("no decision", case_id, "enforcement-decision", {}, 422),
        ("unknown field", case_id, "classification", {**api.COMMAND_BODIES["classification"],
                                                        "colour": "red"}, 422),
        ("not a bool", case_id, "classification", {"crime_victim": "maybe", "preventable": False},
         422),
        ("missing preventable", case_id, "classification", {"crime_victim": True}, 422),
        ("bad category", case_id, "classification", {"crime_victim": True, "preventable": False,
                                                       "category": "Theft Burglary"}, 422),
        ("decided twice", case_id, "enforcement-decision", {"decision": "no_penalty"}, 409),
        ("a complaint case", complaint_id, "classification", api.COMMAND_BODIES["classification"],
         422),
        ("no such case", missing, "enforcement-decision", {"decision": "no_penalty"}, 404),
        ("stale version", case_id, "classification", {**api.COMMAND_BODIES["classification"],
                                                        "expected_version": 1}, 409),
    ]  # fmt: skip
    for what, target, route, body, status in attempts:
        r = await api.client.post(f"/v1/cases/{target}/{route}", json=body, headers=officer)
        assert r.status_code == status, f"{what}: {r.status_code} {r.text}"
        api.problem(r, status)
    r = await api.client.post(
        f"/v1/cases/{case_id}/classification",
        content=b'{"crime_victim": tr',
        headers={**officer, "content-type": "application/json"},
    )
    api.problem(r, 400)
    assert await stored.counts() == before


async def test_restating_a_classification_records_nothing_new(
    api: Api, token: TokenFactory, stored: Stored, client: httpx.AsyncClient
) -> None:
    officer: Headers = token("officer")
    case_id = (await api.receive())["case_id"]
    await api.command(case_id, "classification", headers=officer)
    await api.command(case_id, "classification", headers=officer)
    await api.command(case_id, "classification", headers=officer, preventable=False)
    assert await stored.event_types(case_id) == [
        "CaseReceived",
        "CaseClassified",
        "CaseClassified",
    ]
