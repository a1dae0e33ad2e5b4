"""The wave questionnaire by SMS, opt-outs withdrawn, and audited de-anonymisation, through
the HTTP API on PostgreSQL: idempotent sends, partial answers, nothing written on refusal,
nothing personal on any topic, and every request to link an answer to a person recorded."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest

if TYPE_CHECKING:
    from conftest import Headers, Stored, TokenFactory

pytestmark = pytest.mark.integration

BUREAU, OTHER_BUREAU = "330602", "330603"
STATION = BUREAU + "001"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _frame(rows: int = 10) -> str:
    lines = ["name,phone,address,age_band,sex,residence"]
    for i in range(rows):
        age = ("18-29", "30-44", "45-59", "60+")[i % 4]
        lines.append(
            f"王{i:02d},1370000{i:04d},河西路{i}号,{age},{'male' if i % 2 else 'female'},local"
        )
    return "\n".join(lines) + "\n"


@pytest.fixture
def supervisor(token: TokenFactory) -> Headers:
    return token("supervisor", subject="330602-sv-01")


@pytest.fixture
def commander(token: TokenFactory) -> Headers:
    return token("commander", subject="330602-cm-01")


async def _policy(client: httpx.AsyncClient, commander: Headers, **fields: Any) -> None:
    r = await client.put(f"/v1/policies/{BUREAU}", json=fields, headers=commander)
    assert r.status_code == 200, r.text


async def _wave(
    client: httpx.AsyncClient, supervisor: Headers, modes: tuple[str, ...] = ("sms", "phone")
) -> tuple[str, list[str]]:
    today = datetime.now(UTC).date()
    r = await client.post(
        "/v1/survey-waves",
        json={
            "bureau": BUREAU,
            "title": "民意调查",
            "period_start": (today - timedelta(days=1)).isoformat(),
            "period_end": (today + timedelta(days=7)).isoformat(),
            "precision": 0.2,
            "expected_response_rate": 1.0,
            "modes": list(modes),
        },
        headers=supervisor,
    )
    assert r.status_code == 201, r.text
    wave_id: str = r.json()["wave_id"]
    r = await client.post(
        f"/v1/survey-waves/{wave_id}/frames/{STATION}",
        content=_frame().encode(),
        headers={**supervisor, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/survey-waves/{wave_id}/draws",
        json={"station": STATION, "seed": 3},
        headers=supervisor,
    )
    assert r.status_code == 200, r.text
    r = await client.get(
        f"/v1/survey-waves/{wave_id}/sample", params={"station": STATION}, headers=supervisor
    )
    return wave_id, [u["unit_id"] for u in r.json()["items"]]


async def _invite(client: httpx.AsyncClient, headers: Headers, wave_id: str) -> httpx.Response:
    return await client.post(
        f"/v1/survey-waves/{wave_id}/invitations", json={"station": STATION}, headers=headers
    )


async def _links(db: asyncpg.Pool) -> list[str]:
    rows = await db.fetch("SELECT text FROM sms_sink ORDER BY sent_at")
    found = [re.search(r"/s/([A-Za-z0-9_.-]+)", r["text"]) for r in rows]
    return [m.group(1) for m in found if m]


async def _unit_of(db: asyncpg.Pool, token: str) -> str:
    unit: str = await db.fetchval(
        "SELECT unit_id FROM survey_tokens WHERE token_id = $1", token.split(".")[0]
    )
    return unit


async def test_invitations_respect_opt_outs_quiet_hours_and_scope(
    client: httpx.AsyncClient,
    supervisor: Headers,
    commander: Headers,
    token: TokenFactory,
    stored: Stored,
    db: asyncpg.Pool,
) -> None:
    wave_id, units = await _wave(client, supervisor)
    # One sampled person opts out after the draw: no SMS for them.
    frame = await db.fetchval(
        "SELECT data FROM events WHERE stream_id = $1 AND type = 'SurveyFrameImported'", wave_id
    )
    by_unit = {u["unit_id"]: u["subject_id"] for u in json.loads(frame)["units"]}
    r = await client.post(
        "/v1/opt-outs", json={"subject_id": by_unit[units[0]], "bureau": BUREAU}, headers=supervisor
    )
    assert r.status_code == 201, r.text

    # Quiet hours all day long: refused, nothing sent or written.
    await _policy(client, commander, quiet_start="00:00", quiet_end="23:59")
    before = await stored.counts()
    stored.problem(await _invite(client, supervisor, wave_id), 409)
    # Neither a foreign supervisor, nor an officer, nor a bad body gets anywhere.
    foreign = token("supervisor", scopes=(OTHER_BUREAU,), subject="330603-sv-01")
    stored.problem(await _invite(client, foreign, wave_id), 403)
    stored.problem(await _invite(client, token("officer", scopes=(STATION,)), wave_id), 403)
    r = await client.post(
        f"/v1/survey-waves/{wave_id}/invitations", json={"station": "33060200"}, headers=supervisor
    )
    stored.problem(r, 422)
    assert await stored.counts() == before
    assert await db.fetchval("SELECT count(*) FROM sms_sink") == 0
    await _policy(client, commander, quiet_start="00:00", quiet_end="00:00")
    before = await stored.counts()
    # A station of the bureau with no sample drawn has nobody to invite.
    r = await client.post(
        f"/v1/survey-waves/{wave_id}/invitations", json={"station": BUREAU + "002"},
        headers=supervisor,
    )  # fmt: skip
    stored.problem(r, 409)
    assert await stored.counts() == before

    r = await _invite(client, supervisor, wave_id)
    assert r.status_code == 200, r.text
    assert r.json()["counts"] == {"opted_out": 1, "sent": len(units) - 1}
    r = await _invite(client, supervisor, wave_id)
    assert r.json()["counts"] == {"opted_out": 1, "already_sent": len(units) - 1}
    assert await db.fetchval("SELECT count(*) FROM sms_sink") == len(units) - 1
    sent = await stored.event_types(wave_id)
    assert sent.count("SurveyInvitationSent") == len(units) - 1

    # A wave without the SMS mode sends nothing.
    phone_only, _ = await _wave(client, supervisor, modes=("phone",))
    stored.problem(await _invite(client, supervisor, phone_only), 409)


async def test_a_partial_answer_on_the_page_and_an_empty_one(
    client: httpx.AsyncClient, supervisor: Headers, commander: Headers, db: asyncpg.Pool,
    stored: Stored,
) -> None:  # fmt: skip
    await _policy(client, commander, quiet_start="00:00", quiet_end="00:00")
    wave_id, _ = await _wave(client, supervisor)
    assert (await _invite(client, supervisor, wave_id)).status_code == 200
    first, second = (await _links(db))[:2]

    before = await stored.counts()
    r = await client.post(f"/s/{first}", content="comment=", headers=FORM)
    assert r.status_code == 422 and "请至少回答一题" in r.text
    assert await stored.counts() == before
    # Skipping the headline items is the respondent's right: a partial interview.
    r = await client.post(f"/s/{first}", content="change=worse&problem=fraud", headers=FORM)
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/s/{second}", content="security=unsafe&satisfaction=dissatisfied", headers=FORM
    )
    assert r.status_code == 200, r.text
    r = await client.get(
        f"/v1/survey-waves/{wave_id}/sample", params={"station": STATION}, headers=supervisor
    )
    by_unit = {u["unit_id"]: u["disposition"] for u in r.json()["items"]}
    assert by_unit[await _unit_of(db, first)] == "partial"
    assert by_unit[await _unit_of(db, second)] == "completed"
    # No problem in words, no issue.
    assert "IssueRaised" not in await stored.event_types(wave_id)
    # An interviewer finishing the partial unit later is still possible; the link is not.
    r = await client.post(f"/s/{first}", content="security=safe", headers=FORM)
    assert r.status_code == 410


async def test_an_officer_recorded_problem_raises_one_issue_without_the_person(
    client: httpx.AsyncClient, supervisor: Headers, commander: Headers, stored: Stored,
    token: TokenFactory,
) -> None:  # fmt: skip
    await _policy(client, commander, quiet_start="00:00", quiet_end="00:00")
    wave_id, units = await _wave(client, supervisor)
    officer = token("officer", scopes=(STATION,), subject="p2002")
    url = f"/v1/survey-waves/{wave_id}/units/{units[0]}/attempts"
    before = await stored.counts()
    r = await client.post(
        url, json={"mode": "phone", "outcome": "refused", "problem_text": "路口没有红绿灯"},
        headers=officer,
    )  # fmt: skip
    stored.problem(r, 422)
    assert await stored.counts() == before
    r = await client.post(
        url,
        json={
            "mode": "phone",
            "outcome": "completed",
            "answers": {"security": "safe", "satisfaction": "satisfied", "problem": "traffic"},
            "problem_text": "路口没有红绿灯",
            "area_type": "rural",
        },
        headers=officer,
    )
    assert r.status_code == 200, r.text
    issues = [m for m in await stored.outbox() if m["type"] == "jingmin.visits.IssueRaised.v1"]
    assert len(issues) == 1
    data = issues[0]["payload"]
    assert issues[0]["topic"] == "visits.visit.events.v1" and issues[0]["key"] == wave_id
    assert data["source_type"] == "survey" and data["raised_by"] == "p2002"
    assert data["area_type"] == "rural" and data["category"] == "survey.traffic"
    assert "subject_id" not in data and units[0] not in issues[0]["raw"]
    assert "红绿灯" not in issues[0]["raw"]


async def test_a_withdrawn_opt_out_makes_the_person_contactable_again(
    client: httpx.AsyncClient, supervisor: Headers, commander: Headers, token: TokenFactory,
    stored: Stored, db: asyncpg.Pool,
) -> None:  # fmt: skip
    await _policy(client, commander, quiet_start="00:00", quiet_end="00:00")
    today = datetime.now(UTC).date()
    r = await client.post(
        "/v1/survey-waves",
        json={"bureau": BUREAU, "title": "民意调查", "period_start": today.isoformat(),
              "period_end": (today + timedelta(days=7)).isoformat(), "precision": 0.2,
              "expected_response_rate": 1.0, "modes": ["phone"]},
        headers=supervisor,
    )  # fmt: skip
    wave_id = r.json()["wave_id"]
    r = await client.post(
        f"/v1/survey-waves/{wave_id}/frames/{STATION}",
        content=_frame().encode(),
        headers={**supervisor, "Content-Type": "text/csv"},
    )
    frame = await db.fetchval(
        "SELECT data FROM events WHERE stream_id = $1 AND type = 'SurveyFrameImported'", wave_id
    )
    frame_subjects = {u["unit_id"]: u["subject_id"] for u in json.loads(frame)["units"]}
    # Everyone opts out before the draw: every sampled unit is do-not-contact.
    for subject in frame_subjects.values():
        r = await client.post(
            "/v1/opt-outs", json={"subject_id": subject, "bureau": BUREAU}, headers=supervisor
        )
        assert r.status_code == 201, r.text
    r = await client.post(
        f"/v1/survey-waves/{wave_id}/draws", json={"station": STATION, "seed": 5},
        headers=supervisor,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    r = await client.get(
        f"/v1/survey-waves/{wave_id}/sample", params={"station": STATION}, headers=supervisor
    )
    unit = r.json()["items"][0]
    assert unit["do_not_contact"] is True
    subject = frame_subjects[unit["unit_id"]]
    interviewer = token("officer", scopes=(STATION,), subject="p2002")
    contact = f"/v1/survey-waves/{wave_id}/units/{unit['unit_id']}/contact"
    stored.problem(await client.get(contact, headers=interviewer), 403)

    withdraw = f"/v1/opt-outs/{subject}/withdrawal"
    body = {"bureau": BUREAU, "reason": "本人来电要求恢复回访和调查"}
    before = await stored.counts()
    # An officer cannot, another bureau cannot, a reason is required: nothing written.
    stored.problem(await client.post(withdraw, json=body, headers=interviewer), 403)
    foreign = token("supervisor", scopes=(OTHER_BUREAU,), subject="330603-sv-01")
    stored.problem(await client.post(withdraw, json=body, headers=foreign), 403)
    r = await client.post(
        withdraw, json={**body, "bureau": OTHER_BUREAU}, headers=foreign
    )  # the opt-out is 330602's: the other bureau finds none of its own
    stored.problem(r, 404)
    r = await client.post(withdraw, json={"bureau": BUREAU}, headers=supervisor)
    stored.problem(r, 422)
    assert await stored.counts() == before

    r = await client.post(withdraw, json=body, headers=supervisor)
    assert r.status_code == 200, r.text
    assert r.json() == {"subject_id": subject, "opted_out": False}
    stored.problem(await client.post(withdraw, json=body, headers=supervisor), 404)
    assert await stored.event_types(f"opt-out-{subject}") == ["OptOutRecorded", "OptOutWithdrawn"]
    audit = await db.fetchrow(
        "SELECT data, metadata FROM events WHERE stream_id = $1 AND type = 'OptOutWithdrawn'",
        f"opt-out-{subject}",
    )
    assert json.loads(audit["data"])["reason"] == body["reason"]
    assert json.loads(audit["metadata"])["actor"] == "330602-sv-01"
    # The opt-out facts stay inside the service.
    assert not [m for m in await stored.outbox() if "OptOut" in m["type"]]

    # Contactable again: the number is shown (audited) and an interview can be recorded.
    r = await client.get(contact, headers=interviewer)
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/survey-waves/{wave_id}/units/{unit['unit_id']}/attempts",
        json={"mode": "phone", "outcome": "completed",
              "answers": {"security": "safe", "satisfaction": "satisfied"}},
        headers=interviewer,
    )  # fmt: skip
    assert r.status_code == 200, r.text


async def test_linking_an_answer_to_its_person_is_policy_bound_and_always_audited(
    client: httpx.AsyncClient, supervisor: Headers, commander: Headers, token: TokenFactory,
    stored: Stored, db: asyncpg.Pool,
) -> None:  # fmt: skip
    await _policy(client, commander, quiet_start="00:00", quiet_end="00:00")
    wave_id, units = await _wave(client, supervisor)
    officer = token("officer", scopes=(STATION,), subject="p2002")
    answered, silent = units[0], units[1]
    r = await client.post(
        f"/v1/survey-waves/{wave_id}/units/{answered}/attempts",
        json={"mode": "phone", "outcome": "completed",
              "answers": {"security": "unsafe", "satisfaction": "dissatisfied"},
              "comment": "派出所民警态度很差"},
        headers=officer,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    link = f"/v1/survey-waves/{wave_id}/units/{answered}/link"
    reason = {"reason": "该答复涉及民警纪律问题，需核实"}

    before = await stored.counts()
    # Not the officer's to ask; another bureau's commander is refused and writes nothing
    # to this bureau's stream; a reason is required; an unanswered unit has nothing to link.
    stored.problem(await client.post(link, json=reason, headers=officer), 403)
    foreign = token("commander", scopes=(OTHER_BUREAU,), subject="330603-cm-01")
    stored.problem(await client.post(link, json=reason, headers=foreign), 403)
    stored.problem(await client.post(link, json={}, headers=commander), 422)
    stored.problem(await client.post(link, json={"reason": "  "}, headers=commander), 422)
    r = await client.post(
        f"/v1/survey-waves/{wave_id}/units/{silent}/link", json=reason, headers=commander
    )
    stored.problem(r, 409)
    assert await stored.counts() == before

    # Default policy: refused, and the refusal is recorded.
    body = stored.problem(await client.post(link, json=reason, headers=commander), 403)
    assert "recorded" in body["detail"]
    assert (await stored.event_types(wave_id)).count("SurveyAnswerLinked") == 1

    await _policy(client, commander, survey_answer_linking=True)
    r = await client.post(link, json=reason, headers=supervisor)
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["result"] == "granted" and shown["phone"].startswith("1370000")
    assert shown["name"].startswith("王") and shown["answers"]["satisfaction"] == "dissatisfied"
    assert r.headers["cache-control"] == "no-store"

    rows = await db.fetch(
        "SELECT data FROM events WHERE stream_id = $1 AND type = 'SurveyAnswerLinked' "
        "ORDER BY version",
        wave_id,
    )
    recorded = [json.loads(x["data"]) for x in rows]
    assert [(d["result"], d["requested_by"], d["role"]) for d in recorded] == [
        ("refused", "330602-cm-01", "commander"),
        ("granted", "330602-sv-01", "supervisor"),
    ]
    assert all(d["unit_id"] == answered for d in recorded)
    assert "核实" not in rows[0]["data"]  # the reason is encrypted under the person

    # On the topic: who asked and the result; never the unit, the person, the reason.
    linked = [m for m in await stored.outbox() if m["type"].endswith("SurveyAnswerLinked.v1")]
    assert [m["payload"]["result"] for m in linked] == ["refused", "granted"]
    for m in await stored.outbox():
        assert answered not in m["raw"] and "王" not in m["raw"] and "1370000" not in m["raw"]
        assert "核实" not in m["raw"] and "态度很差" not in m["raw"]
