"""Survey waves (民意调查) through the HTTP API on PostgreSQL: define, frame, draw, fieldwork,
estimates; retries write nothing twice, bad input writes nothing, other bureaus see nothing."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from eventkit.contracts import CONTRACTS_ENV, SchemaRegistry
from eventkit.personal import subject_ref
from eventkit.settings import KernelSettings
from jingmin_visits.domain.estimates import Dispositions, aapor
from jingmin_visits.domain.survey import Outcome, draw_sample
from jingmin_visits.integration.messages import SURVEY_TOPIC, SURVEY_TYPES

if TYPE_CHECKING:
    from conftest import Headers, Stored, TokenFactory

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[4]
BUREAU = "330602"
OTHER_BUREAU = "330603"
STATION = BUREAU + "001"
TODAY = datetime.now(UTC).date()
CSV_TYPE = {"Content-Type": "text/csv"}
BEIJING = ZoneInfo("Asia/Shanghai")


def _daytime() -> str:
    """The latest 10:00 in Beijing that has passed: outside the quiet hours (20:00-08:00)."""
    now = datetime.now(BEIJING)
    day = now.date() if now.hour >= 10 else now.date() - timedelta(days=1)
    return datetime.combine(day, time(10), BEIJING).isoformat()


def _night() -> str:
    now = datetime.now(BEIJING)
    return datetime.combine(now.date() - timedelta(days=1), time(21), BEIJING).isoformat()


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    configured = os.environ.get(CONTRACTS_ENV)
    return SchemaRegistry.load(Path(configured) if configured else REPO / "contracts")


@pytest.fixture
def admin(token: TokenFactory) -> Headers:
    return token("admin", subject="adm01")


@pytest.fixture
def field_officer(token: TokenFactory) -> Headers:
    return token("officer", scopes=(STATION,), subject="p2002")


def _wave(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "bureau": BUREAU,
        "title": "2026年第四季度群众安全感和满意度调查",
        "period_start": (TODAY - timedelta(days=2)).isoformat(),
        "period_end": (TODAY + timedelta(days=30)).isoformat(),
        "precision": 0.1,
        "expected_response_rate": 0.6,
        "modes": ["phone", "in_person"],
    }
    body.update(over)
    return body


def _frame(rows: int = 120) -> tuple[str, list[dict[str, str]]]:
    """A frame with names, numbers and addresses; two thirds local."""
    people = []
    for i in range(rows):
        people.append(
            {
                "name": f"居民{i:03d}号",
                "phone": f"1380013{i:04d}",
                "address": f"城南村{i % 7}组{i}号",
                "age_band": ("18-29", "30-44", "45-59", "60+")[i % 4],
                "sex": "female" if i % 2 else "male",
                "residence": "local" if i % 3 else "non_local",
            }
        )
    header = "name,phone,address,age_band,sex,residence"
    lines = [header] + [",".join(p[k] for k in header.split(",")) for p in people]
    return "\n".join(lines) + "\n", people


async def _define(client: httpx.AsyncClient, headers: Headers, **over: Any) -> str:
    r = await client.post("/v1/survey-waves", json=_wave(**over), headers=headers)
    assert r.status_code == 201, r.text
    wave_id: str = r.json()["wave_id"]
    assert r.headers["location"] == f"/v1/survey-waves/{wave_id}"
    return wave_id


async def _sample(
    client: httpx.AsyncClient, headers: Headers, wave_id: str
) -> list[dict[str, Any]]:
    r = await client.get(
        f"/v1/survey-waves/{wave_id}/sample", params={"station": STATION}, headers=headers
    )
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def _framed(client: httpx.AsyncClient, headers: Headers, wave_id: str, text: str) -> None:
    r = await client.post(
        f"/v1/survey-waves/{wave_id}/frames/{STATION}", content=text.encode(), headers=headers
    )
    assert r.status_code == 200, r.text


async def _drawn(
    client: httpx.AsyncClient, headers: Headers, wave_id: str, seed: int | None = None
) -> list[dict[str, Any]]:
    """Draw the station's sample (a frame is imported) and return it."""
    body: dict[str, Any] = (
        {"station": STATION} if seed is None else {"station": STATION, "seed": seed}
    )
    r = await client.post(f"/v1/survey-waves/{wave_id}/draws", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return await _sample(client, headers, wave_id)


async def _counts(db: asyncpg.Pool) -> dict[str, int]:
    row = await db.fetchrow(
        """SELECT (SELECT count(*) FROM events) AS events,
                  (SELECT count(*) FROM outbox) AS outbox,
                  (SELECT count(*) FROM survey_waves) AS waves,
                  (SELECT count(*) FROM idempotency_keys) AS idempotency_keys,
                  (SELECT count(*) FROM contact_reads) AS contact_reads"""
    )
    return dict(row)


async def _frame_ids(db: asyncpg.Pool, wave_id: str) -> list[str]:
    rows = await db.fetch(
        """SELECT data FROM events WHERE stream_id = $1 AND type = 'SurveyFrameImported'
           ORDER BY version""",
        wave_id,
    )
    ids: list[str] = []
    for row in rows:
        data = json.loads(row["data"]) if isinstance(row["data"], str) else row["data"]
        ids = ([] if data["part"] == 1 else ids) + [u["unit_id"] for u in data["units"]]
    return ids


async def test_a_wave_from_definition_to_estimates(
    client: httpx.AsyncClient,
    admin: Headers,
    field_officer: Headers,
    token: TokenFactory,
    settings: KernelSettings,
    db: asyncpg.Pool,
    stored: Stored,
    registry: SchemaRegistry,
) -> None:
    wave_id = await _define(client, admin)
    text, people = _frame(120)
    # The frame arrives in two numbered parts.
    cut = text.index("\n", len(text) // 2) + 1
    header = text.split("\n", 1)[0] + "\n"
    r = await client.post(
        f"/v1/survey-waves/{wave_id}/frames/{STATION}?part=1",
        content=text[:cut].encode(),
        headers={**admin, **CSV_TYPE},
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/survey-waves/{wave_id}/frames/{STATION}?part=2",
        content=(header + text[cut:]).encode(),
        headers={**admin, **CSV_TYPE},
    )
    assert r.status_code == 200, r.text

    # One of the people the draw will pick opted out of being contacted, before the draw.
    frame_ids = await _frame_ids(db, wave_id)
    chosen = frame_ids.index(draw_sample(frame_ids, 90, 20261207)[3])
    opted = subject_ref({"phone": people[chosen]["phone"]}, settings)
    r = await client.post(
        "/v1/opt-outs", json={"subject_id": opted, "bureau": BUREAU}, headers=admin
    )
    assert r.status_code in (200, 201), r.text

    r = await client.post(
        f"/v1/survey-waves/{wave_id}/draws",
        json={"station": STATION, "seed": 20261207},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["seed"] == 20261207

    detail = (await client.get(f"/v1/survey-waves/{wave_id}", headers=admin)).json()
    frame = detail["stations"][0]
    assert frame["frame_size"] == 120 and frame["parts"] == 2 and frame["drawn"]
    assert frame["margins"]["residence"] == {"local": 80, "non_local": 40}
    # n0 = 1.96²·0.25/0.1² = 96.04; with N = 120: 96.04/(1 + 95.04/120) = 53.6; /0.6 → 90
    assert frame["sample_size"] == 90
    assert [i["item"] for i in detail["questionnaire"]][:2] == ["security", "satisfaction"]

    sample = await _sample(client, field_officer, wave_id)  # the station's own officer
    assert [u["unit_id"] for u in sample] == draw_sample(frame_ids, 90, 20261207)
    index = {u: i for i, u in enumerate(frame_ids)}
    blocked = [u for u in sample if u["do_not_contact"]]
    assert [index[u["unit_id"]] for u in blocked] == [chosen]
    # The opted-out person is neither shown to an interviewer nor attempted.
    url = f"/v1/survey-waves/{wave_id}/units/{blocked[0]['unit_id']}"
    stored.problem(await client.get(f"{url}/contact", headers=field_officer), 403)
    r = await client.post(
        f"{url}/attempts", json={"mode": "phone", "outcome": "refused"}, headers=field_officer
    )
    stored.problem(r, 409)

    # The interviewer borrows a number; the read is recorded.
    open_units = [u for u in sample if not u["do_not_contact"]]
    first = open_units[0]
    before = await _counts(db)
    r = await client.get(
        f"/v1/survey-waves/{wave_id}/units/{first['unit_id']}/contact", headers=field_officer
    )
    assert r.status_code == 200, r.text
    person = people[index[first["unit_id"]]]
    assert r.json()["phone"] == person["phone"] and r.json()["name"] == person["name"]
    assert (await _counts(db))["contact_reads"] == before["contact_reads"] + 1

    # Fieldwork: every third completes, then partial, refused, non-contact, ineligible…
    plan = [
        Outcome.COMPLETED,
        Outcome.COMPLETED,
        Outcome.PARTIAL,
        Outcome.REFUSED,
        Outcome.NON_CONTACT,
        Outcome.INELIGIBLE,
        Outcome.COMPLETED,
        Outcome.UNKNOWN_ELIGIBILITY,
    ]
    recorded: list[Outcome] = []
    for i, unit in enumerate(open_units[:40]):
        outcome = plan[i % len(plan)]
        body: dict[str, Any] = {
            "mode": "phone",
            "outcome": outcome.value,
            "occurred_at": _daytime(),
        }
        if outcome == Outcome.COMPLETED:
            body["answers"] = {
                "security": "safe" if i % 4 else "not_very_safe",
                "satisfaction": "satisfied" if i % 5 else "dissatisfied",
                "change": "better",
                "problem": "fraud",
            }
            body["comment"] = "希望多巡逻,电话13800000000"
        elif outcome == Outcome.PARTIAL:
            body["answers"] = {"security": "basically_safe"}
        r = await client.post(
            f"/v1/survey-waves/{wave_id}/units/{unit['unit_id']}/attempts",
            json=body,
            headers=field_officer,
        )
        assert r.status_code == 200, r.text
        recorded.append(outcome)

    est = (await client.get(f"/v1/survey-waves/{wave_id}/estimates", headers=admin)).json()
    station = est["stations"][0]
    # The AAPOR rates by hand: the 49 sampled units never attempted are U, the opt-out is R.
    never = 90 - 40 - len(blocked)
    d = Dispositions.of([*recorded, *[Outcome.UNKNOWN_ELIGIBILITY] * never])
    d = Dispositions(**{**d.__dict__, "refused": d.refused + len(blocked)})
    assert station["dispositions"]["refused"] == d.refused
    i_, p_, r_, nc, ne, u_ = (
        d.completed, d.partial, d.refused, d.non_contact, d.ineligible, d.unknown_eligibility
    )  # fmt: skip
    rr1 = i_ / (i_ + p_ + r_ + nc + u_)
    assert station["response_rates"]["rr1"] == pytest.approx(rr1, abs=1e-6)
    e = (i_ + p_ + r_ + nc) / (i_ + p_ + r_ + nc + ne)
    rr3 = i_ / (i_ + p_ + r_ + nc + e * u_)
    assert station["response_rates"]["rr3"] == pytest.approx(rr3, abs=1e-6)
    assert station["response_rates"]["rr1"] == pytest.approx(aapor(d).rr1, abs=1e-6)
    sat = station["satisfaction"]
    assert sat["unweighted"]["n"] == i_  # partials did not answer satisfaction
    assert 0 <= sat["weighted"]["low"] <= sat["weighted"]["p"] <= sat["weighted"]["high"] <= 1
    assert station["security"]["unweighted"]["n"] == i_ + p_
    assert est["county"]["respondents"] == i_ + p_

    # Nothing personal on the topic, and each message fits its contract.
    messages = [m for m in await stored.outbox() if m["topic"] == SURVEY_TOPIC]
    # (invitations and answer links belong to the SMS page and de-anonymisation tests)
    assert {m["type"] for m in messages} == set(SURVEY_TYPES) - {
        "jingmin.visits.SurveyInvitationSent.v1",
        "jingmin.visits.SurveyAnswerLinked.v1",
    }
    for m in messages:
        registry.validate(m["type"], m["payload"])
        assert m["key"] == wave_id
        for secret in ("居民", "1380013", "城南村", "巡逻", "13800000000", first["unit_id"]):
            assert secret not in m["raw"]
    # Nor in the event store, except as ciphertext.
    raw = await db.fetchval("SELECT string_agg(data::text, '') FROM events")
    assert "居民" not in raw and "巡逻" not in raw and people[0]["phone"] not in raw

    listed = (await client.get("/v1/survey-waves", headers=field_officer)).json()["items"]
    assert [w["wave_id"] for w in listed] == [wave_id]
    assert listed[0]["interviews"] == i_ + p_ and listed[0]["sampled"] == 90


async def test_same_seed_and_same_frame_give_the_same_sample(
    client: httpx.AsyncClient, admin: Headers, db: asyncpg.Pool
) -> None:
    text, _ = _frame(60)
    positions = []
    for seed in (7, 7, 8):
        wave_id = await _define(client, admin)
        await _framed(client, admin, wave_id, text)
        sample = await _drawn(client, admin, wave_id, seed)
        frame = await _frame_ids(db, wave_id)
        positions.append([frame.index(u["unit_id"]) for u in sample])
    assert positions[0] == positions[1]  # unit ids differ per import; the frame rows do not
    assert positions[0] != positions[2]


async def test_a_retry_with_the_same_key_writes_nothing_twice(
    client: httpx.AsyncClient, admin: Headers, field_officer: Headers, db: asyncpg.Pool
) -> None:
    key = {"Idempotency-Key": "wave-define-0001"}
    first = await client.post("/v1/survey-waves", json=_wave(), headers={**admin, **key})
    after_first = await _counts(db)
    again = await client.post("/v1/survey-waves", json=_wave(), headers={**admin, **key})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert await _counts(db) == after_first
    wave_id = first.json()["wave_id"]

    text, _ = _frame(30)
    frame_key = {**admin, **CSV_TYPE, "Idempotency-Key": "frame-0001"}
    url = f"/v1/survey-waves/{wave_id}/frames/{STATION}"
    r1 = await client.post(url, content=text.encode(), headers=frame_key)
    after_frame = await _counts(db)
    r2 = await client.post(url, content=text.encode(), headers=frame_key)
    assert r1.status_code == r2.status_code == 200 and r1.json() == r2.json()
    assert await _counts(db) == after_frame

    unit = (await _drawn(client, admin, wave_id))[0]["unit_id"]
    body = {
        "mode": "in_person",
        "outcome": "completed",
        "answers": {"security": "safe", "satisfaction": "basically_satisfied"},
    }
    attempt_key = {**field_officer, "Idempotency-Key": "attempt-0001"}
    url = f"/v1/survey-waves/{wave_id}/units/{unit}/attempts"
    a1 = await client.post(url, json=body, headers=attempt_key)
    after_attempt = await _counts(db)
    a2 = await client.post(url, json=body, headers=attempt_key)
    assert a1.status_code == a2.status_code == 200 and a1.json() == a2.json()
    assert await _counts(db) == after_attempt
    # Without the key the same interview is refused: the unit is already completed.
    a3 = await client.post(url, json=body, headers=field_officer)
    assert a3.status_code == 409, a3.text
    assert await _counts(db) == after_attempt


async def test_bad_input_is_a_problem_and_writes_nothing(
    client: httpx.AsyncClient, admin: Headers, field_officer: Headers, db: asyncpg.Pool,
    stored: Stored,
) -> None:  # fmt: skip
    wave_id = await _define(client, admin)
    before = await _counts(db)
    bad_waves = [
        _wave(modes=[]),
        _wave(precision=0.6),
        _wave(period_end=(TODAY - timedelta(days=5)).isoformat()),
        _wave(station_precision={"330603001": 0.05}),
        {**_wave(), "unexpected": 1},
    ]
    for body in bad_waves:
        r = await client.post("/v1/survey-waves", json=body, headers=admin)
        stored.problem(r, 422)
    url = f"/v1/survey-waves/{wave_id}/frames/{STATION}"
    bad_frames = [
        b"age_band,sex,residence\n17-18,male,local\n",  # not an age band
        b"age_band,sex,residence,id_card\n18-29,male,local,x\n",  # a column nobody declared
        b"name,phone\nA,1\n",  # no strata
        b"age_band,sex,residence\n",  # no rows
        b"age_band,sex,residence\n18-29,male\n",  # a short row
        "age_band,sex,residence\n18-29,男,local\n".encode("gb18030"),  # not UTF-8
    ]
    for content in bad_frames:
        r = await client.post(url, content=content, headers={**admin, **CSV_TYPE})
        stored.problem(r, 422)
    r = await client.post(url + "?part=3", content=_frame(3)[0].encode(), headers=admin)
    stored.problem(r, 409)  # part 3 before part 2
    r = await client.post(
        f"/v1/survey-waves/{wave_id}/draws", json={"station": STATION}, headers=admin
    )
    stored.problem(r, 409)  # no frame yet
    assert await _counts(db) == before

    await _framed(client, admin, wave_id, _frame(20)[0])
    unit = (await _drawn(client, admin, wave_id, 1))[0]["unit_id"]
    before = await _counts(db)
    attempts = f"/v1/survey-waves/{wave_id}/units/{unit}/attempts"
    for body, status in [
        ({"mode": "phone", "outcome": "completed"}, 422),  # no answers
        ({"mode": "phone", "outcome": "refused", "answers": {"security": "safe"}}, 422),
        ({"mode": "phone", "outcome": "gone_fishing"}, 422),
        ({"mode": "sms", "outcome": "non_contact"}, 422),  # not one of this wave's modes
        ({"mode": "phone", "outcome": "non_contact", "occurred_at": _night()}, 422),  # quiet
        ({"mode": "phone", "outcome": "non_contact", "comment": "x"}, 422),
        (
            {
                "mode": "phone",
                "outcome": "completed",
                "answers": {"security": "safe", "satisfaction": "satisfied"},
                "occurred_at": (datetime.now(UTC) + timedelta(days=60)).isoformat(),
            },
            422,
        ),
    ]:
        r = await client.post(attempts, json=body, headers=field_officer)
        stored.problem(r, status)
    r = await client.post(
        f"/v1/survey-waves/{wave_id}/units/{'0' * 32}/attempts",
        json={"mode": "phone", "outcome": "non_contact"},
        headers=admin,
    )
    stored.problem(r, 404)  # (a station's officer is told 403: it is not theirs to ask)
    assert await _counts(db) == before


async def test_another_bureau_can_neither_read_nor_write(
    client: httpx.AsyncClient, admin: Headers, token: TokenFactory, db: asyncpg.Pool,
    stored: Stored,
) -> None:  # fmt: skip
    wave_id = await _define(client, admin)
    text, _ = _frame(20)
    await _framed(client, admin, wave_id, text)
    unit = (await _drawn(client, admin, wave_id, 3))[0]["unit_id"]
    roles = ("officer", "supervisor", "commander", "admin")
    foreign = token(*roles, scopes=(OTHER_BUREAU,), subject="330603-adm")
    neighbour = token(*roles, scopes=(BUREAU + "002",), subject="330602002-p1")
    before = await _counts(db)
    writes = [
        ("/v1/survey-waves", {"json": _wave()}),
        (f"/v1/survey-waves/{wave_id}/frames/{STATION}", {"content": text.encode()}),
        (f"/v1/survey-waves/{wave_id}/draws", {"json": {"station": STATION}}),
        (
            f"/v1/survey-waves/{wave_id}/units/{unit}/attempts",
            {"json": {"mode": "phone", "outcome": "refused"}},
        ),
    ]
    for url, kw in writes:
        for headers in (foreign, neighbour):
            r = await client.post(url, headers=headers, **kw)
            stored.problem(r, 403)
    reads = [
        (f"/v1/survey-waves/{wave_id}", {}),
        (f"/v1/survey-waves/{wave_id}/estimates", {}),
        (f"/v1/survey-waves/{wave_id}/sample", {"params": {"station": STATION}}),
        (f"/v1/survey-waves/{wave_id}/units/{unit}/contact", {}),
    ]
    for url, kw in reads:
        r = await client.get(url, headers=foreign, **kw)
        stored.problem(r, 403)
    # Each refused contact read is on the audit trail, with who asked.
    refused = await db.fetch(
        "SELECT reader, result, status FROM contact_reads WHERE item_id = $1",
        f"{wave_id}/{unit}",
    )
    assert [tuple(r) for r in refused] == [("330603-adm", "forbidden", 403)]
    listed = await client.get("/v1/survey-waves", headers=foreign)
    assert listed.status_code == 200 and listed.json()["items"] == []
    # A neighbouring station's officer sees the wave, but not the county's estimates nor
    # another station's sample or people.
    assert (await client.get(f"/v1/survey-waves/{wave_id}", headers=neighbour)).status_code == 200
    for url, kw in reads[1:]:
        stored.problem(await client.get(url, headers=neighbour, **kw), 403)
    counts = await _counts(db)
    assert counts["contact_reads"] == before["contact_reads"] + 2  # the two refused reads
    assert {**counts, "contact_reads": 0} == {**before, "contact_reads": 0}
    r = await client.post(
        "/v1/survey-waves", json=_wave(), headers=token("officer", subject="p1001")
    )
    stored.problem(r, 403)  # defining a wave is for the bureau's organisers


async def test_interviewers_recording_at_once_lose_nothing_and_record_nothing_twice(
    client: httpx.AsyncClient, admin: Headers, field_officer: Headers, db: asyncpg.Pool
) -> None:
    wave_id = await _define(client, admin)
    await _framed(client, admin, wave_id, _frame(40)[0])
    sample = await _drawn(client, admin, wave_id, 5)
    units = [u["unit_id"] for u in sample if not u["do_not_contact"]][:8]
    body = {"mode": "in_person", "outcome": "non_contact"}
    answers = await asyncio.gather(
        *(
            client.post(
                f"/v1/survey-waves/{wave_id}/units/{u}/attempts", json=body, headers=field_officer
            )
            for u in units
        )
    )
    # All fieldwork of a wave appends to its one stream: a burst of writers races for it.
    # The kernel decides each lost race again on fresh state; one that loses every retry is
    # a 409 that wrote nothing, and the client's retry records it, once.
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 409}

    async def recorded() -> int:
        found: int = await db.fetchval(
            "SELECT count(*) FROM events WHERE stream_id = $1 AND type = 'SurveyAttemptRecorded'",
            wave_id,
        )
        return found

    assert await recorded() == statuses.count(200)
    for unit, status in zip(units, statuses, strict=True):
        if status == 409:
            r = await client.post(
                f"/v1/survey-waves/{wave_id}/units/{unit}/attempts",
                json=body,
                headers=field_officer,
            )
            assert r.status_code == 200, r.text
    assert await recorded() == len(units)
    sample = await _sample(client, admin, wave_id)
    assert sorted(u["attempts"] for u in sample if u["unit_id"] in units) == [1] * len(units)
