"""The internal contact API as an owning service serves it, and the client other services use.

A tiny owner app (service_app + contact_router over a table of items) runs in-process against
a fresh database; every read attempt must leave exactly one audit row.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from eventkit.app import service_app
from eventkit.auth import TokenVerifier, issue_token
from eventkit.contacts import (
    CONTACT_PURPOSES,
    ContactClient,
    ContactClientSettings,
    ContactErased,
    ContactNotFound,
    ContactRefused,
    ContactSource,
    ContactUnavailable,
    contact_router,
    service_token_source,
)
from eventkit.personal import Vault, subject_ref
from eventkit.problems import PROBLEM_JSON
from eventkit.settings import KernelSettings
from fastapi import FastAPI

pytestmark = pytest.mark.integration

BUREAU = "330602"
STATION = BUREAU + "001"
OTHER_STATION = "330603001"
Headers = dict[str, str]


@pytest.fixture
def settings(tmp_path: Path) -> KernelSettings:
    return KernelSettings(
        jingmin_home=tmp_path,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        kafka_bootstrap_servers="127.0.0.1:9",
    )


async def find_item(conn: asyncpg.Connection, item_id: str) -> ContactSource | None:
    row = await conn.fetchrow(
        "SELECT station, subject_id, name::text, phone::text FROM items WHERE item_id = $1",
        item_id,
    )
    if row is None:
        return None
    return ContactSource(
        station=row["station"],
        subject_id=row["subject_id"],
        name=json.loads(row["name"]) if row["name"] else None,
        phone=json.loads(row["phone"]) if row["phone"] else None,
    )


@pytest.fixture
async def app(settings: KernelSettings, dsn: str) -> AsyncIterator[FastAPI]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """CREATE TABLE items (item_id text PRIMARY KEY, station text NOT NULL,
                   subject_id text, name jsonb, phone jsonb)"""
        )
    finally:
        await conn.close()
    application = service_app(
        # Tracing is configured once per process, by the first app: every kernel test's
        # app is "toy", so the telemetry tests see the name they expect whatever runs first.
        "toy",
        title="contact owner",
        database="unused",
        router=contact_router(find_item, noun="case"),
        commands=lambda store, vault: None,
        settings=settings,
        dsn=dsn,
    )
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://owner.test") as c:
        yield c


@pytest.fixture
def token(settings: KernelSettings) -> Callable[..., Headers]:
    def make(
        *roles: str, scopes: Iterable[str] = (BUREAU,), subject: str = "svc:visits"
    ) -> Headers:
        value = issue_token(
            settings, subject=subject, roles=roles or ("service",), scopes=list(scopes)
        )
        return {"Authorization": f"Bearer {value}"}

    return make


class Items:
    """Writes items the way an owning service would: fields encrypted under the person."""

    def __init__(self, app: FastAPI, settings: KernelSettings) -> None:
        self.pool: asyncpg.Pool = app.state.pool
        self.vault: Vault = app.state.vault
        self.settings = settings

    async def add(
        self,
        station: str = STATION,
        name: str | None = "王秀英",
        phone: str | None = "13912345678",
        person: bool = True,
    ) -> tuple[str, str | None]:
        item_id = uuid.uuid4().hex
        subject = subject_ref({"phone": phone}, self.settings) if person else None
        async with self.pool.acquire() as conn, conn.transaction():
            sealed: dict[str, Any] = {}
            if subject is not None:
                sealed = dict(
                    await self.vault.encrypt_fields(conn, subject, {"name": name, "phone": phone})
                )
            await conn.execute(
                "INSERT INTO items VALUES ($1, $2, $3, $4::jsonb, $5::jsonb)",
                item_id,
                station,
                subject,
                json.dumps(sealed["name"]) if sealed.get("name") else None,
                json.dumps(sealed["phone"]) if sealed.get("phone") else None,
            )
        return item_id, subject

    async def reads(self) -> list[dict[str, Any]]:
        rows = await self.pool.fetch("SELECT * FROM contact_reads ORDER BY read_id")
        return [dict(r) for r in rows]


@pytest.fixture
def items(app: FastAPI, settings: KernelSettings) -> Items:
    return Items(app, settings)


def url(item_id: str) -> str:
    return f"/internal/v1/contacts/{item_id}"


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    return body


async def test_a_service_in_scope_reads_the_contact_and_the_read_is_recorded(
    client: httpx.AsyncClient, items: Items, token: Callable[..., Headers]
) -> None:
    item_id, subject = await items.add()
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    r = await client.get(
        url(item_id),
        params={"purpose": "callback"},
        headers={**token("service"), "X-Correlation-Id": "corr-42", "traceparent": traceparent},
    )

    assert r.status_code == 200, r.text
    assert r.json() == {
        "item_id": item_id,
        "subject_id": subject,
        "name": "王秀英",
        "phone": "13912345678",
    }
    assert r.headers["cache-control"] == "no-store"
    [read] = await items.reads()
    assert read["reader"] == "svc:visits"
    assert read["roles"] == ["service"]
    assert read["scopes"] == [BUREAU]
    assert (read["purpose"], read["item_id"], read["subject_id"]) == ("callback", item_id, subject)
    assert (read["station"], read["result"], read["status"]) == (STATION, "granted", 200)
    assert read["correlation_id"] == "corr-42"
    # The owner's span continues the caller's trace, and the audit row names it.
    assert read["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert read["read_at"] is not None


async def test_an_admin_may_read_too_and_an_item_without_a_person_has_no_contact(
    client: httpx.AsyncClient, items: Items, token: Callable[..., Headers]
) -> None:
    item_id, _ = await items.add(person=False)

    r = await client.get(url(item_id), params={"purpose": "survey"}, headers=token("admin"))

    assert r.status_code == 200, r.text
    assert r.json() == {"item_id": item_id, "subject_id": None, "name": None, "phone": None}


@pytest.mark.parametrize(
    ("params", "detail"),
    [({}, "purpose is required"), ({"purpose": "curiosity"}, "unknown purpose")],
)
async def test_a_missing_or_unknown_purpose_is_refused_and_recorded(
    client: httpx.AsyncClient,
    items: Items,
    token: Callable[..., Headers],
    params: dict[str, str],
    detail: str,
) -> None:
    item_id, _ = await items.add()

    body = problem(await client.get(url(item_id), params=params, headers=token()), 422)

    assert detail in body["detail"]
    assert body["allowed"] == list(CONTACT_PURPOSES)
    [read] = await items.reads()
    assert (read["result"], read["status"], read["purpose"]) == ("invalid_purpose", 422, None)
    assert read["item_id"] == item_id


async def test_unknown_and_out_of_scope_items_answer_the_same_404(
    client: httpx.AsyncClient, items: Items, token: Callable[..., Headers]
) -> None:
    elsewhere, subject = await items.add(station=OTHER_STATION)
    unknown = uuid.uuid4().hex

    a = problem(
        await client.get(url(unknown), params={"purpose": "callback"}, headers=token()), 404
    )
    b = problem(
        await client.get(url(elsewhere), params={"purpose": "callback"}, headers=token()), 404
    )

    # Nothing in the answer tells a probing token that the second id exists.
    assert a["title"] == b["title"] and a["type"] == b["type"]
    assert "name" not in b and "phone" not in b
    first, second = await items.reads()
    assert (first["result"], first["item_id"], first["station"]) == ("not_found", unknown, None)
    assert (second["result"], second["station"], second["subject_id"]) == (
        "out_of_scope",
        OTHER_STATION,
        subject,
    )


async def test_a_station_scoped_service_reads_only_its_own_station(
    client: httpx.AsyncClient, items: Items, token: Callable[..., Headers]
) -> None:
    own, _ = await items.add(station=STATION)
    neighbour, _ = await items.add(station=BUREAU + "002")
    headers = token("service", scopes=[STATION])

    ok = await client.get(url(own), params={"purpose": "callback"}, headers=headers)
    refused = await client.get(url(neighbour), params={"purpose": "callback"}, headers=headers)

    assert ok.status_code == 200
    problem(refused, 404)


async def test_tokens_without_a_reading_role_or_without_a_token_are_refused_and_recorded(
    client: httpx.AsyncClient, items: Items, token: Callable[..., Headers]
) -> None:
    item_id, _ = await items.add()

    body = problem(
        await client.get(
            url(item_id), params={"purpose": "callback"}, headers=token("officer", "supervisor")
        ),
        403,
    )
    anonymous = await client.get(url(item_id), params={"purpose": "callback"})
    forged = await client.get(
        url(item_id), params={"purpose": "callback"}, headers={"Authorization": "Bearer nope"}
    )

    assert "service" in body["detail"]
    problem(anonymous, 401)
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    problem(forged, 401)
    reads = await items.reads()
    assert [(r["result"], r["status"]) for r in reads] == [
        ("forbidden", 403),
        ("unauthenticated", 401),
        ("unauthenticated", 401),
    ]
    assert reads[0]["reader"] == "svc:visits"
    assert reads[0]["roles"] == ["officer", "supervisor"]
    assert reads[1]["reader"] is None and reads[1]["roles"] == []
    # The purpose and item were well-formed, so they are kept even for refusals.
    assert {(r["purpose"], r["item_id"]) for r in reads} == {("callback", item_id)}
    # Refused before the item was looked at, yet recorded against its unit for supervisors.
    assert {r["station"] for r in reads} == {STATION}


async def test_a_malformed_item_id_is_refused_and_recorded_without_it(
    client: httpx.AsyncClient, items: Items, token: Callable[..., Headers]
) -> None:
    body = problem(
        await client.get(url("13912345678"), params={"purpose": "callback"}, headers=token()), 422
    )

    assert "not a case id" in body["detail"]
    [read] = await items.reads()
    # Whatever the caller put in the path is not stored: it could be anything.
    assert (read["result"], read["item_id"], read["purpose"]) == ("invalid_item", None, "callback")


async def test_after_erasure_the_contact_is_gone_410(
    client: httpx.AsyncClient, items: Items, token: Callable[..., Headers]
) -> None:
    item_id, subject = await items.add()
    # Warm the vault's key cache first: an erasure must win over a cached key at once.
    r = await client.get(url(item_id), params={"purpose": "callback"}, headers=token())
    assert r.status_code == 200
    assert subject is not None
    # Erased by another process (as `jingmin erase` does): this app's vault is not told.
    other_vault = Vault(items.pool, items.settings)
    assert await other_vault.erase(None, subject, by="admin-1", reason="request")

    body = problem(
        await client.get(url(item_id), params={"purpose": "callback"}, headers=token()), 410
    )

    assert "forgotten" in body["detail"]
    reads = await items.reads()
    assert [(r["result"], r["status"]) for r in reads] == [("granted", 200), ("erased", 410)]
    assert reads[1]["subject_id"] == subject


async def test_the_audit_trail_cannot_be_edited(
    client: httpx.AsyncClient, items: Items, token: Callable[..., Headers]
) -> None:
    item_id, _ = await items.add()
    await client.get(url(item_id), params={"purpose": "callback"}, headers=token())

    for statement in (
        "UPDATE contact_reads SET reader = 'someone-else'",
        "DELETE FROM contact_reads",
        "TRUNCATE contact_reads",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await items.pool.execute(statement)
    assert len(await items.reads()) == 1


async def test_supervisors_list_the_reads_of_their_scope(
    client: httpx.AsyncClient, items: Items, token: Callable[..., Headers]
) -> None:
    mine, _ = await items.add()
    theirs, _ = await items.add(station=OTHER_STATION)
    for purpose in ("callback", "survey", "complaint_reply"):
        await client.get(url(mine), params={"purpose": purpose}, headers=token())
    await client.get(
        url(theirs), params={"purpose": "callback"}, headers=token(scopes=[OTHER_STATION[:6]])
    )
    await client.get(url(mine), params={"purpose": "callback"})  # no token

    r = await client.get("/v1/contact-reads", headers=token("supervisor"))
    assert r.status_code == 200, r.text
    page = r.json()
    assert [i["item_id"] for i in page["items"]] == [mine] * 4
    assert [i["purpose"] for i in page["items"]] == [
        "callback",
        "complaint_reply",
        "survey",
        "callback",
    ]
    assert page["items"][0]["result"] == "unauthenticated"
    assert page["next_cursor"] is None

    other = await client.get(
        "/v1/contact-reads", headers=token("supervisor", scopes=[OTHER_STATION[:6]])
    )
    assert [i["item_id"] for i in other.json()["items"]] == [theirs]

    first = await client.get("/v1/contact-reads", params={"limit": 2}, headers=token("supervisor"))
    rest = await client.get(
        "/v1/contact-reads",
        params={"limit": 2, "cursor": first.json()["next_cursor"]},
        headers=token("supervisor"),
    )
    ids = [i["read_id"] for i in first.json()["items"] + rest.json()["items"]]
    assert ids == [i["read_id"] for i in page["items"]]

    filtered = await client.get(
        "/v1/contact-reads",
        params={"item_id": mine, "result": "granted", "reader": "svc:visits"},
        headers=token("admin"),
    )
    assert len(filtered.json()["items"]) == 3
    future = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    later = await client.get(
        "/v1/contact-reads", params={"since": future}, headers=token("supervisor")
    )
    assert later.json()["items"] == []


async def test_admins_also_see_probes_for_unknown_items_by_tokens_of_their_scope(
    client: httpx.AsyncClient, items: Items, token: Callable[..., Headers]
) -> None:
    probe = uuid.uuid4().hex
    await client.get(url(probe), params={"purpose": "callback"}, headers=token())

    admin = await client.get("/v1/contact-reads", headers=token("admin"))
    supervisor = await client.get("/v1/contact-reads", headers=token("supervisor"))
    elsewhere = await client.get("/v1/contact-reads", headers=token("admin", scopes=["330603"]))

    assert [i["item_id"] for i in admin.json()["items"]] == [probe]
    assert supervisor.json()["items"] == []
    assert elsewhere.json()["items"] == []


async def test_the_listing_is_for_supervisors_and_admins_with_checked_parameters(
    client: httpx.AsyncClient, token: Callable[..., Headers]
) -> None:
    problem(await client.get("/v1/contact-reads", headers=token("service")), 403)
    problem(await client.get("/v1/contact-reads"), 401)
    for params in ({"limit": 0}, {"item_id": "x"}, {"since": "yesterday"}, {"result": "maybe"}):
        problem(
            await client.get("/v1/contact-reads", params=params, headers=token("supervisor")), 422
        )
    problem(
        await client.get(
            "/v1/contact-reads", params={"cursor": "garbage"}, headers=token("supervisor")
        ),
        400,
    )


# ---- the client --------------------------------------------------------------------------


def asgi_client(app: FastAPI, token: Callable[[], Any], **kw: Any) -> ContactClient:
    return ContactClient(
        "http://owner.test", token, transport=httpx.ASGITransport(app=app), backoff=0.01, **kw
    )


async def test_the_client_fetches_a_contact_and_turns_404_and_410_into_exceptions(
    app: FastAPI, items: Items, settings: KernelSettings
) -> None:
    item_id, subject = await items.add()
    tokens = service_token_source(settings, subject="svc:visits", scopes=[BUREAU])

    async with asgi_client(app, tokens) as contacts:
        contact = await contacts.fetch(item_id, "callback", correlation_id="cb-1")
        assert (contact.name, contact.phone, contact.subject_id) == (
            "王秀英",
            "13912345678",
            subject,
        )
        # Never in a log line by accident.
        assert "13912345678" not in repr(contact) and "王秀英" not in repr(contact)

        with pytest.raises(ContactNotFound) as missing:
            await contacts.fetch(uuid.uuid4().hex, "callback")
        assert missing.value.status == 404
        assert subject is not None
        await items.vault.erase(None, subject, by="admin-1")
        with pytest.raises(ContactErased) as erased:
            await contacts.fetch(item_id, "callback")
        assert erased.value.status == 410 and erased.value.item_id == item_id
        with pytest.raises(ContactRefused) as bad:
            await contacts.fetch(item_id, "curiosity")
        assert bad.value.status == 422

    reads = await items.reads()
    assert [r["result"] for r in reads] == ["granted", "not_found", "erased", "invalid_purpose"]
    assert reads[0]["correlation_id"] == "cb-1"


async def test_the_client_with_a_token_of_the_wrong_role_is_refused(
    app: FastAPI, items: Items, settings: KernelSettings
) -> None:
    item_id, _ = await items.add()
    officer = issue_token(settings, subject="p1", roles=["officer"], scopes=[BUREAU])

    async def token() -> str:  # an async token source works as well as a plain one
        return officer

    async with asgi_client(app, token) as contacts:
        with pytest.raises(ContactRefused) as refused:
            await contacts.fetch(item_id, "callback")
    assert refused.value.status == 403


async def test_the_client_retries_connection_errors_and_5xx_then_succeeds() -> None:
    item_id = uuid.uuid4().hex
    calls: list[str] = []
    tokens = iter(["t1", "t2", "t3"])

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["authorization"])
        if len(calls) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        if len(calls) == 2:
            return httpx.Response(503, json={"title": "Service Unavailable", "status": 503})
        assert request.url.params["purpose"] == "survey"
        body = {"item_id": item_id, "subject_id": "sub_abcdefgh", "name": None, "phone": "110"}
        return httpx.Response(200, json=body)

    async with ContactClient(
        "http://owner.test/",
        lambda: next(tokens),
        transport=httpx.MockTransport(answer),
        backoff=0.001,
    ) as contacts:
        contact = await contacts.fetch(item_id, "survey")

    assert contact.phone == "110"
    # The token source is asked on every attempt, so a renewed token is used at once.
    assert calls == ["Bearer t1", "Bearer t2", "Bearer t3"]


async def test_the_client_gives_up_after_its_attempts_with_contact_unavailable() -> None:
    calls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(502)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with ContactClient(
        "http://owner.test",
        lambda: "t",
        transport=httpx.MockTransport(answer),
        attempts=3,
        backoff=0.001,
    ) as contacts:
        with pytest.raises(ContactUnavailable) as busy:
            await contacts.fetch(uuid.uuid4().hex, "callback")
    assert calls == 3 and busy.value.status == 502

    async with ContactClient(
        "http://owner.test",
        lambda: "t",
        transport=httpx.MockTransport(refuse),
        attempts=2,
        backoff=0.001,
    ) as contacts:
        with pytest.raises(ContactUnavailable) as down:
            await contacts.fetch(uuid.uuid4().hex, "callback")
    assert down.value.status is None
    assert isinstance(down.value.__cause__, httpx.ConnectError)


async def test_the_client_does_not_retry_a_refusal() -> None:
    calls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(401, json={"title": "Unauthorized", "detail": "token has expired"})

    async with ContactClient(
        "http://owner.test", lambda: "t", transport=httpx.MockTransport(answer), backoff=0.001
    ) as contacts:
        with pytest.raises(ContactRefused, match="token has expired"):
            await contacts.fetch(uuid.uuid4().hex, "callback")
    assert calls == 1


def test_service_tokens_come_from_settings_or_the_dev_key(
    settings: KernelSettings, tmp_path: Path
) -> None:
    minted = service_token_source(settings, subject="svc:visits", scopes=[BUREAU])
    principal = TokenVerifier(settings).verify(minted())
    assert (principal.subject, principal.roles, principal.scopes) == (
        "svc:visits",
        frozenset({"service"}),
        (BUREAU,),
    )
    assert minted() == minted()  # cached until close to expiry

    static = ContactClientSettings(service_token="abc")
    assert service_token_source(settings, subject="x", scopes=["33"], client_settings=static)() == (
        "abc"
    )
    secret = tmp_path / "token"
    secret.write_text("first\n")
    from_file = service_token_source(
        settings,
        subject="x",
        scopes=["33"],
        client_settings=ContactClientSettings(service_token_file=secret),
    )
    assert from_file() == "first"
    secret.write_text("rotated\n")
    assert from_file() == "rotated"

    production = settings.model_copy(update={"jwt_jwks_url": "https://idp.example/jwks"})
    with pytest.raises(ValueError, match="SERVICE_TOKEN"):
        service_token_source(
            production, subject="x", scopes=["33"], client_settings=ContactClientSettings()
        )


def test_the_owner_is_found_by_environment_or_by_its_service_spec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from eventkit.contacts import owner_base_url

    monkeypatch.delenv("INTAKE_URL", raising=False)
    monkeypatch.delenv("INTAKE_PORT", raising=False)
    assert owner_base_url("intake") == "http://127.0.0.1:8101"
    monkeypatch.setenv("INTAKE_PORT", "18101")
    assert owner_base_url("intake") == "http://127.0.0.1:18101"
    monkeypatch.setenv("INTAKE_URL", "https://intake.internal:8443/")
    assert owner_base_url("intake") == "https://intake.internal:8443"
    with pytest.raises(LookupError, match="NO_SUCH_SERVICE_URL"):
        owner_base_url("no-such-service")
