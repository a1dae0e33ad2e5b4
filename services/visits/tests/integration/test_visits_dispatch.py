"""The SMS survey dispatcher's hard cases, and callbacks triggered by the complaints service."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from eventkit.consumer import IdempotentConsumer
from eventkit.contacts import Contact, ContactErased, ContactUnavailable
from eventkit.envelope import Envelope
from eventkit.store import PostgresEventStore
from jingmin_visits.adapters import survey_tokens
from jingmin_visits.adapters.sms import (
    HttpSmsGateway,
    SinkSmsGateway,
    SmsRefused,
    SmsUnavailable,
    mask,
)
from jingmin_visits.application.complaints_consumer import ComplaintsHandler, build_consumer
from jingmin_visits.application.surveys import SurveyDispatcher

if TYPE_CHECKING:
    from conftest import FakeProducer, Intake, Stored

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Contacts:
    """Stands in for the owning services' contact APIs: answers, or fails as told."""

    def __init__(self) -> None:
        self.fail: Exception | None = None
        self.asked: list[tuple[str, str, str]] = []

    async def fetch(
        self, owner: str, item_id: str, purpose: str, correlation_id: str | None
    ) -> Contact:
        self.asked.append((owner, item_id, purpose))
        if self.fail is not None:
            raise self.fail
        return Contact(item_id=item_id, subject_id=None, name="张三", phone="13800001111")


class Gateway:
    def __init__(self) -> None:
        self.fail: Exception | None = None
        self.sent: list[tuple[str, str]] = []

    async def send(self, to: str, text: str, reference: str) -> str:
        if self.fail is not None:
            raise self.fail
        self.sent.append((to, text))
        return "m-" + reference


def _dispatcher(
    db: asyncpg.Pool, contacts: Contacts, gateway: Any, clock: Callable[[], datetime]
) -> SurveyDispatcher:
    return SurveyDispatcher(
        PostgresEventStore(db),
        contacts,
        gateway,
        b"k" * 32,
        public_base_url="https://pj.example.gov.cn/",
        ttl=timedelta(hours=48),
        signature="测试公安局",
        clock=clock,
    )


async def _sms_callback(
    make_consumer: Callable[..., IdempotentConsumer], intake: Intake, resolved_at: datetime
) -> str:
    case_id, envelopes = intake.case(
        resolved_at=resolved_at, received_at=resolved_at - timedelta(1)
    )
    consumer = make_consumer()
    for env in envelopes:
        assert await consumer.handle(intake.record(env)) == "applied"
    return f"cb-{case_id}-case_resolved"


async def test_quiet_hours_hold_the_sms_until_morning(
    db: asyncpg.Pool, make_consumer: Callable[..., IdempotentConsumer], intake: Intake
) -> None:
    day = datetime.now(SHANGHAI).date() - timedelta(days=1)
    late = datetime(day.year, day.month, day.day, 22, 30, tzinfo=SHANGHAI)
    callback_id = await _sms_callback(make_consumer, intake, late - timedelta(hours=1))
    due = await db.fetchval("SELECT due_at FROM callbacks WHERE callback_id = $1", callback_id)
    assert due.astimezone(SHANGHAI).time().isoformat() == "08:00:00"  # shifted, not dropped
    gateway, contacts = Gateway(), Contacts()
    now = [late]
    dispatcher = _dispatcher(db, contacts, gateway, lambda: now[0])
    assert await dispatcher.run_once() == {"quiet_hours": 1}
    assert gateway.sent == [] and contacts.asked == []
    now[0] = late + timedelta(hours=10)  # 08:30 the next morning
    assert await dispatcher.run_once() == {"sent": 1}
    ((to, text),) = gateway.sent
    assert to == "13800001111"
    assert text.startswith("【测试公安局】") and "https://pj.example.gov.cn/s/" in text
    assert callback_id not in text
    assert contacts.asked == [("intake", callback_id[3:35], "survey")]


async def test_an_erased_person_is_recorded_unreachable_and_never_retried(
    db: asyncpg.Pool,
    make_consumer: Callable[..., IdempotentConsumer],
    intake: Intake,
    stored: Stored,
) -> None:
    day = datetime.now(SHANGHAI).date()
    now = datetime(day.year, day.month, day.day, 11, tzinfo=SHANGHAI)
    callback_id = await _sms_callback(make_consumer, intake, now - timedelta(minutes=10))
    contacts, gateway = Contacts(), Gateway()
    contacts.fail = ContactErased("gone", item_id="x", status=410)
    dispatcher = _dispatcher(db, contacts, gateway, lambda: now)
    assert await dispatcher.run_once() == {"unreachable": 1}
    assert await dispatcher.run_once() == {}
    assert (await stored.event_types(callback_id))[-1] == "CallbackAttempted"
    row = (await stored.callbacks(callback_id[3:35]))[0]
    assert (row["status"], row["last_outcome"]) == ("scheduled", "unreachable")


async def test_an_owner_or_gateway_outage_records_nothing_and_is_retried(
    db: asyncpg.Pool,
    make_consumer: Callable[..., IdempotentConsumer],
    intake: Intake,
    stored: Stored,
) -> None:
    day = datetime.now(SHANGHAI).date()
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=SHANGHAI)
    callback_id = await _sms_callback(make_consumer, intake, noon - timedelta(minutes=30))
    contacts, gateway = Contacts(), Gateway()
    dispatcher = _dispatcher(db, contacts, gateway, lambda: noon)
    before = await stored.counts()
    contacts.fail = ContactUnavailable("down", item_id="x")
    assert await dispatcher.run_once() == {"contact_unavailable": 1}
    contacts.fail = None
    gateway.fail = SmsUnavailable("503")
    assert await dispatcher.run_once() == {"sms_unavailable": 1}
    assert await stored.counts() == before
    assert await db.fetchval("SELECT count(*) FROM survey_tokens") == 0
    gateway.fail = None
    assert await dispatcher.run_once() == {"sent": 1}
    assert (await stored.event_types(callback_id))[-1] == "CallbackSurveySent"
    assert await db.fetchval("SELECT count(*) FROM survey_tokens") == 1
    gateway.fail = SmsRefused("400")  # a refusal for another callback is unreachable
    other = await _sms_callback(make_consumer, intake, noon - timedelta(minutes=20))
    assert await dispatcher.run_once() == {"unreachable": 1}
    assert (await stored.event_types(other))[-1] == "CallbackAttempted"


async def test_http_gateway_retries_5xx_and_gives_up_on_4xx() -> None:
    calls: list[dict[str, Any]] = []
    answers = [503, 502, 200]

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(
            {"body": json.loads(request.content), "auth": request.headers["authorization"]}
        )
        status = answers.pop(0)
        return httpx.Response(status, json={"message_id": "p-1"} if status == 200 else {})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        gateway = HttpSmsGateway(client, "https://sms.example/send", "secret", "106900", backoff=0)
        assert await gateway.send("13800001111", "你好", "cb-1") == "p-1"
        assert len(calls) == 3
        assert calls[0] == {
            "body": {"to": "13800001111", "text": "你好", "reference": "cb-1", "sender": "106900"},
            "auth": "Bearer secret",
        }
        answers[:] = [400]
        with pytest.raises(SmsRefused):
            await gateway.send("1", "x", "cb-2")
        answers[:] = [500, 500, 500]
        with pytest.raises(SmsUnavailable):
            await gateway.send("1", "x", "cb-3")


async def test_sink_masks_numbers(db: asyncpg.Pool) -> None:
    await SinkSmsGateway(db).send("+86 138-0013-8000", "链接", "cb-x")
    assert await db.fetchval("SELECT to_masked FROM sms_sink") == "861******8000"
    assert mask("13800138000") == "138****8000"


async def test_links_are_signed_single_use_and_expire(db: asyncpg.Pool) -> None:
    key = b"s" * 32
    async with db.acquire() as conn:
        token = await survey_tokens.mint(conn, key, "cb-x", datetime.now(UTC) + timedelta(1))
        token_id = survey_tokens.verified_id(key, token)
        assert token_id is not None
        assert survey_tokens.verified_id(b"t" * 32, token) is None
        assert survey_tokens.verified_id(key, token + "x") is None
        assert survey_tokens.verified_id(key, "no-dot") is None
        async with conn.transaction():
            found = await survey_tokens.look_up(conn, token_id, consume=True)
        assert found.state is survey_tokens.State.VALID and found.callback_id == "cb-x"
        again = await survey_tokens.look_up(conn, token_id, consume=True)
        assert again.state is survey_tokens.State.USED


# ---- callbacks the complaints service triggers ------------------------------------------


def _complaints_envelope(type_: str, stream: str, data: dict[str, Any]) -> Envelope:
    at = datetime.now(UTC) - timedelta(hours=1)
    return Envelope(
        id=str(uuid.uuid4()),
        source="/jingmin/complaints",
        type=type_,
        subject=stream,
        time=at,
        data={"bureau": "330602", "station": "330602001", "occurred_at": at.isoformat(), **data},
        bureau="330602",
        streamid=stream,
        streamversion=5,
    )


async def test_a_concluded_complaint_and_a_recovery_each_get_one_phone_callback(
    db: asyncpg.Pool,
    dead_letters: FakeProducer,
    intake: Intake,
    make_consumer: Callable[..., IdempotentConsumer],
    stored: Stored,
) -> None:
    consumer = build_consumer(db, dead_letters, handler=ComplaintsHandler(), validate=None)  # type: ignore[arg-type]
    complaint_id = uuid.uuid4().hex
    concluded = _complaints_envelope(
        "jingmin.complaints.ComplaintConcluded.v1",
        complaint_id,
        {
            "complaint_id": complaint_id,
            "outcome": "substantiated",
            "channel": "online",
            "category": "attitude",
            "subject_id": "sub_complainant01",
        },
    )
    withdrawn_id = uuid.uuid4().hex
    withdrawn = _complaints_envelope(
        "jingmin.complaints.ComplaintConcluded.v1",
        withdrawn_id,
        {"complaint_id": withdrawn_id, "outcome": "withdrawn", "channel": "online"},
    )
    case_id, envelopes = intake.case()
    for env in envelopes:
        await make_consumer().handle(intake.record(env))
    order_id = uuid.uuid4().hex
    recovery = _complaints_envelope(
        "jingmin.supervision.RecoveryFollowUpRequested.v1",
        order_id,
        {"order_id": order_id, "case_id": case_id, "callback_id": f"cb-{case_id}-case_resolved"},
    )
    for env in (concluded, withdrawn, recovery, concluded, recovery):  # redelivered twice
        await consumer.handle(intake.record(env, topic="complaints.complaint.events.v1"))
    rows = {r["trigger"]: r for r in await stored.callbacks()}
    assert set(rows) == {"case_resolved", "complaint_concluded", "service_recovery"}
    assert rows["complaint_concluded"]["callback_id"] == f"cb-{complaint_id}-complaint_concluded"
    assert rows["complaint_concluded"]["mode"] == "phone"
    assert rows["service_recovery"]["case_id"] == case_id
    assert rows["service_recovery"]["subject_id"] == "sub_" + "a1b2c3d4e5f6"
    history = await stored.event_types(f"cb-{complaint_id}-complaint_concluded")
    assert history == ["CallbackScheduled"]
    owner = await db.fetchval(
        "SELECT data->>'contact_owner' FROM events WHERE stream_id = $1",
        f"cb-{complaint_id}-complaint_concluded",
    )
    assert owner == "complaints"
    assert dead_letters.sent == []


async def test_a_complaint_from_an_intake_case_borrows_the_contact_from_intake(
    db: asyncpg.Pool, dead_letters: FakeProducer, intake: Intake, stored: Stored
) -> None:
    consumer = build_consumer(db, dead_letters, handler=ComplaintsHandler(), validate=None)  # type: ignore[arg-type]
    complaint_id, case_id = uuid.uuid4().hex, uuid.uuid4().hex
    received = _complaints_envelope(
        "jingmin.complaints.ComplaintReceived.v1",
        complaint_id,
        {"complaint_id": complaint_id, "intake_case_id": case_id, "channel": "call_110"},
    )
    concluded = _complaints_envelope(
        "jingmin.complaints.ComplaintConcluded.v1",
        complaint_id,
        {"complaint_id": complaint_id, "outcome": "unsubstantiated", "channel": "call_110"},
    )
    for env in (received, concluded):
        await consumer.handle(intake.record(env, topic="complaints.complaint.events.v1"))
    callback_id = f"cb-{complaint_id}-complaint_concluded"
    data = await db.fetchval("SELECT data FROM events WHERE stream_id = $1", callback_id)
    data = json.loads(data) if isinstance(data, str) else data
    assert (data.get("contact_owner", "intake"), data["contact_item"]) == ("intake", case_id)
    contacts = Contacts()
    day = datetime.now(SHANGHAI).date()
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=SHANGHAI)
    await db.execute("UPDATE callbacks SET mode = 'sms'")  # exercise the dispatcher's lookup
    await db.execute(
        "UPDATE events SET data = jsonb_set(data, '{mode}', '\"sms\"') WHERE stream_id = $1",
        callback_id,
    )
    await _dispatcher(db, contacts, Gateway(), lambda: noon).run_once()
    assert contacts.asked == [("intake", case_id, "survey")]
