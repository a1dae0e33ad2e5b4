"""The complaints API against real PostgreSQL: lifecycle, contracts, privacy, tenancy, 回避."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from eventkit.chain import chain_key, verify
from eventkit.contracts import SchemaRegistry, dataschema_urn
from eventkit.settings import KernelSettings
from jingmin_complaints.application.handlers import Commands
from jingmin_complaints.application.sweeper import sweep_once
from jingmin_complaints.integration.messages import COMPLAINT_TOPIC, COMPLAINT_TYPES

if TYPE_CHECKING:
    from conftest import Api, Clock, Headers, Stored, TokenFactory

pytestmark = pytest.mark.integration

SECRETS = (
    "李建国",
    "13800001111",
    "城关镇幸福路8号",
    "民警态度恶劣",
    "希望民警道歉",
    "证人外出务工",
    "执法记录仪",
    "已电话告知",
    "处理过轻",
    "已为其办结",
)


def validate_all(registry: SchemaRegistry, rows: list[dict[str, Any]]) -> None:
    problems = []
    for row in rows:
        type_, headers = row["type"], row["headers"]
        assert headers["ce_type"] == type_ and headers["ce_dataschema"] == dataschema_urn(type_)
        assert headers["ce_streamid"] == row["key"] == headers["ce_subject"]
        try:
            registry.validate(type_, row["payload"])
        except Exception as exc:
            problems.append(f"{exc} (payload {row['payload']})")
    assert not problems, "\n".join(problems)


async def test_a_complaint_walks_its_whole_lifecycle_through_the_api(
    api: Api,
    stored: Stored,
    registry: SchemaRegistry,
    db: asyncpg.Pool,
    settings: KernelSettings,
) -> None:
    created = await api.receive()
    complaint_id = created["complaint_id"]
    assert (created["status"], created["version"]) == ("received", 1)
    assert len(created["receipt_code"]) == 14

    for action, status in (("acknowledge", "acknowledged"), ("assign", "investigating")):
        assert (await api.command(complaint_id, action))["status"] == status, action
    detail = await api.get(f"/v1/complaints/{complaint_id}")
    due = detail["deadlines"]["conclusion"]["due_at"][:10]
    # The date a person picks is local; at most 30 days after the current due date.
    new_due = (date.fromisoformat(due) + timedelta(days=20)).isoformat()
    for action, extra, status in [
        ("extend", {"new_due_date": new_due}, "investigating"),
        ("conclude", {}, "concluded"),
        ("reply", {}, "replied"),
        ("close", {}, "closed"),
        ("remedy", {}, "closed"),
        ("reopen", {}, "reopened"),
        ("conclude", {"outcome": "partially_substantiated", "actions": ["apology"]}, "concluded"),
        ("reply", {"mode": "letter"}, "replied"),
        ("close", {}, "closed"),
    ]:
        answer = await api.command(complaint_id, action, **extra)
        assert answer["status"] == status, action

    detail = await api.get(f"/v1/complaints/{complaint_id}")
    summary = detail["complaint"]
    assert (summary["status"], summary["fixed"], summary["reopened"]) == ("closed", True, 1)
    assert summary["outcome"] == "partially_substantiated" and summary["extended"] is False
    history = detail["history"]
    assert [e["type"] for e in history] == [
        "ComplaintReceived",
        "ComplaintAcknowledged",
        "InvestigatorAssigned",
        "InvestigationExtended",
        "ComplaintConcluded",
        "ComplaintReplySent",
        "ComplaintClosed",
        "ComplaintRemedied",
        "ComplaintReopened",
        "ComplaintConcluded",
        "ComplaintReplySent",
        "ComplaintClosed",
    ]
    # Authorised readers see the complainant and the texts, decrypted.
    first = history[0]["data"]
    assert first["complainant"] == {
        "name": "李建国",
        "phone": "13800001111",
        "address": "城关镇幸福路8号",
    }
    assert (
        first["account"].startswith("在城关派出所") and first["receipt"] == created["receipt_code"]
    )
    assert history[4]["data"]["findings"].startswith("经调取执法记录仪")
    assert all(e["actor"] == "dc-1" for e in history)

    # Nothing personal in plain text in the store; nothing personal at all on the topic.
    rows = await db.fetch("SELECT data::text || metadata::text AS t FROM events")
    text = "".join(r["t"] for r in rows)
    outbox = await stored.outbox(complaint_id)
    for secret in (*SECRETS, created["receipt_code"]):
        assert secret not in text
        assert all(secret not in row["raw"] for row in outbox)
    assert all("aesgcm1" not in row["raw"] for row in outbox)

    assert len(outbox) == 12 and {row["topic"] for row in outbox} == {COMPLAINT_TOPIC}
    validate_all(registry, outbox)
    concluded = [r["payload"] for r in outbox if r["type"].endswith("ComplaintConcluded.v1")]
    assert concluded[0] == {
        "complaint_id": complaint_id,
        "bureau": api.BUREAU,
        "station": api.STATION,
        "occurred_at": concluded[0]["occurred_at"],
        "outcome": "substantiated",
        "actions": ["apology", "criticism_education"],
        "channel": "visit",
        "category": "attitude",
        "subject_unit": api.STATION,
        "level": "station",
        "on_time": True,
        "subject_id": first["subject_id"],
    }
    closed = [r["payload"]["fixed"] for r in outbox if r["type"].endswith("ComplaintClosed.v1")]
    assert closed == [False, True]  # closed first without, then with the fix recorded

    async with db.acquire() as conn:
        report = await verify(conn, chain_key(settings))
    assert report.intact and report.events == 12


async def test_the_subjects_own_unit_or_officer_cannot_investigate(
    api: Api, stored: Stored, token: TokenFactory
) -> None:
    complaint_id = (await api.receive())["complaint_id"]
    await api.command(complaint_id, "acknowledge")
    before = await stored.counts()
    for body in (
        {"investigator_id": "dc-9", "investigator_unit": api.STATION},
        {"investigator_id": "dc-9", "investigator_unit": api.STATION + "01"},
        {"investigator_id": "p2001", "investigator_unit": api.BUREAU},
    ):
        r = await api.client.post(
            f"/v1/complaints/{complaint_id}/assign", json=body, headers=api.headers
        )
        problem = api.problem(r, 422)
        assert problem["type"] == "urn:jingmin:problem:conflict-of-interest"
    assert await stored.counts() == before

    # The officer complained about cannot act on the complaint at all, whatever their role.
    subject = token("supervisor", subject="p2001")
    r = await api.client.post(
        f"/v1/complaints/{complaint_id}/assign",
        json={"investigator_id": "dc-9", "investigator_unit": api.BUREAU},
        headers=subject,
    )
    api.problem(r, 403)
    assert await stored.counts() == before


async def test_one_overdue_fact_and_one_escalation_survive_a_restart(
    api: Api,
    stored: Stored,
    clock: Clock,
    make_commands: Callable[[], Commands],
    registry: SchemaRegistry,
    settings: KernelSettings,
) -> None:
    complaint_id = (await api.receive())["complaint_id"]
    await api.command(complaint_id, "acknowledge")
    await api.command(complaint_id, "assign")
    assert await sweep_once(make_commands()) == 0

    clock.advance(days=62)  # past the 60-day conclusion deadline
    assert await sweep_once(make_commands()) == 2
    assert await sweep_once(make_commands()) == 0  # a restarted sweeper finds it recorded
    clock.advance(days=30)
    assert await sweep_once(make_commands()) == 0

    types = await stored.event_types(complaint_id)
    assert types[-2:] == ["ComplaintOverdue", "ComplaintEscalated"]
    assert types.count("ComplaintOverdue") == 1 and types.count("ComplaintEscalated") == 1
    outbox = await stored.outbox(complaint_id)
    validate_all(registry, outbox)
    escalated = outbox[-1]["payload"]
    assert (escalated["from_level"], escalated["to_level"], escalated["to_unit"]) == (
        "station",
        "bureau",
        api.BUREAU,
    )

    async with stored.pool.acquire() as conn:  # the sweeper's writes are chained too
        assert (await verify(conn, chain_key(settings))).intact
    late = await api.get("/v1/complaints", overdue="true")
    assert [c["complaint_id"] for c in late["items"]] == [complaint_id]
    assert late["items"][0]["level"] == "bureau"
    # A late conclusion says so.
    answer = await api.command(complaint_id, "conclude")
    assert answer["status"] == "concluded"
    concluded = (await stored.outbox(complaint_id))[-1]["payload"]
    assert concluded["on_time"] is False


async def test_an_anonymous_complaint_keeps_no_identity_and_publishes_none(
    api: Api, stored: Stored, db: asyncpg.Pool, registry: SchemaRegistry
) -> None:
    created = await api.receive(anonymous=True)
    complaint_id = created["complaint_id"]
    detail = await api.get(f"/v1/complaints/{complaint_id}")
    assert "complainant" not in detail["history"][0]["data"]
    [row] = await stored.outbox(complaint_id)
    assert "subject_id" not in row["payload"] and row["payload"]["anonymous"] is True
    validate_all(registry, [row])
    assert await db.fetchval("SELECT count(*) FROM subject_keys") == 1  # words still sealed
    # Nobody can be answered: conclude, then close without a reply.
    await api.command(complaint_id, "acknowledge")
    await api.command(complaint_id, "assign")
    await api.command(complaint_id, "conclude", outcome="unsubstantiated", actions=[])
    await api.command(complaint_id, "reply", expect=409)
    assert (await api.command(complaint_id, "close"))["status"] == "closed"


async def test_scopes_roles_and_bad_input(
    api: Api, stored: Stored, token: TokenFactory, supervisor: Headers
) -> None:
    complaint_id = (await api.receive())["complaint_id"]
    before = await stored.counts()
    other = token("supervisor", scopes=[api.OTHER_BUREAU])
    r = await api.client.get(f"/v1/complaints/{complaint_id}", headers=other)
    api.problem(r, 403)
    assert (await api.get("/v1/complaints", headers=other))["items"] == []
    r = await api.client.post(f"/v1/complaints/{complaint_id}/acknowledge", json={}, headers=other)
    api.problem(r, 403)
    # Officers may file a complaint for a citizen but not manage or read one.
    officer = token("officer")
    r = await api.client.post(
        f"/v1/complaints/{complaint_id}/acknowledge", json={}, headers=officer
    )
    api.problem(r, 403)
    api.problem(await api.client.get("/v1/complaints", headers=officer), 403)
    # A commander sees the list, not the complainant.
    commander = token("commander")
    assert (await api.get("/v1/complaints", headers=commander))["items"]
    api.problem(await api.client.get(f"/v1/complaints/{complaint_id}", headers=commander), 403)

    for bad in (
        {"subject_unit": "330603001"},  # another bureau's unit
        {"category": "rude"},
        {"account": ""},
        {"complainant": {"phone": "call me"}},
        {"occurred_at": "2024-01-01T00:00:00"},  # no time zone
        {"surprise": True},
    ):
        r = await api.client.post("/v1/complaints", json=api.body(**bad), headers=supervisor)
        api.problem(r, 422)
    api.problem(
        await api.client.post(
            "/v1/complaints/" + "f" * 32 + "/acknowledge", json={}, headers=supervisor
        ),
        404,
    )
    await api.command(complaint_id, "close", expect=409)
    assert await stored.counts() == before


async def test_a_retried_receipt_gets_the_same_complaint_and_code(
    api: Api, stored: Stored, supervisor: Headers
) -> None:
    headers = {**supervisor, "Idempotency-Key": "desk-7-0001"}
    first = await api.receive(headers=headers)
    again = await api.receive(headers=headers)
    assert again == first
    assert (await stored.counts())["complaints"] == 1


async def test_every_complaint_event_type_is_emitted_and_valid(
    api: Api,
    stored: Stored,
    clock: Clock,
    make_commands: Callable[[], Commands],
    registry: SchemaRegistry,
) -> None:
    # Acknowledged with corrections, extended, concluded late after a sweep; another
    # complaint breaches its acknowledgement deadline.
    first = (await api.receive(subject_officer=None, channel="online"))["complaint_id"]
    await api.command(first, "acknowledge", subject_unit=api.OTHER_STATION, subject_officer="p3003")
    await api.command(first, "assign")
    detail = await api.get(f"/v1/complaints/{first}")
    due = detail["deadlines"]["conclusion"]["due_at"][:10]
    await api.command(first, "extend", new_due_date=due, expect=422)  # not later
    second = (await api.receive())["complaint_id"]
    clock.advance(days=20)
    assert await sweep_once(make_commands()) == 2  # second's acknowledgement
    await api.command(first, "assign", investigator_id="dc-8", investigator_unit="330602003")
    await api.command(first, "conclude", outcome="withdrawn", actions=[])
    await api.command(first, "close")
    await api.command(second, "acknowledge")
    await api.command(second, "assign")
    await api.command(second, "conclude")
    await api.command(second, "reply")
    await api.command(second, "close")
    await api.command(second, "reopen", reason="review")
    await api.command(second, "remedy", expect=409)  # reopened: nothing concluded to fix

    rows = await stored.outbox()
    emitted = {r["type"] for r in rows}
    walked = {
        "jingmin.complaints.InvestigationExtended.v1",
        "jingmin.complaints.ComplaintRemedied.v1",
    }
    assert emitted | walked == set(COMPLAINT_TYPES)  # the lifecycle test covers the others
    validate_all(registry, rows)


async def test_visits_reads_a_complainants_contact_through_the_audited_api(
    api: Api, token: TokenFactory
) -> None:
    complaint_id = (await api.receive())["complaint_id"]
    anonymous_id = (await api.receive(anonymous=True))["complaint_id"]
    visits = token("service", subject="svc-visits")
    path = f"/internal/v1/contacts/{complaint_id}"

    r = await api.client.get(path, params={"purpose": "complaint_reply"}, headers=visits)
    assert r.status_code == 200, r.text
    contact = r.json()
    assert (contact["name"], contact["phone"]) == ("李建国", "13800001111")
    assert contact["subject_id"].startswith("sub_")
    assert r.headers["cache-control"] == "no-store"

    api.problem(await api.client.get(path, headers=visits), 422)  # no purpose
    elsewhere = token("service", scopes=[api.OTHER_BUREAU], subject="svc-other")
    api.problem(await api.client.get(path, params={"purpose": "callback"}, headers=elsewhere), 404)
    r = await api.client.get(
        f"/internal/v1/contacts/{anonymous_id}", params={"purpose": "callback"}, headers=visits
    )
    assert r.json() == {"item_id": anonymous_id, "subject_id": None, "name": None, "phone": None}

    admin = token("admin", subject="admin-1")
    r = await api.client.delete(f"/v1/subjects/{contact['subject_id']}", headers=admin)
    assert r.status_code == 204
    api.problem(await api.client.get(path, params={"purpose": "callback"}, headers=visits), 410)

    reads = await api.get("/v1/contact-reads", item_id=complaint_id)
    assert [(r["reader"], r["result"]) for r in reads["items"]] == [
        ("svc-visits", "erased"),
        ("svc-other", "out_of_scope"),
        ("svc-visits", "invalid_purpose"),
        ("svc-visits", "granted"),
    ]
    # The erased complainant's words are gone from the history too.
    detail = await api.get(f"/v1/complaints/{complaint_id}")
    assert detail["history"][0]["data"]["account"] == "[erased]"
