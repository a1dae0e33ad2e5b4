"""Another service reads a case's contact from intake at call time, and every read is on file."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import httpx
import pytest
from eventkit.contacts import ContactClient, ContactErased, ContactNotFound
from eventkit.settings import KernelSettings
from fastapi import FastAPI

if TYPE_CHECKING:
    from conftest import Api, TokenFactory

pytestmark = pytest.mark.integration


def url(case_id: str) -> str:
    return f"/internal/v1/contacts/{case_id}"


async def test_visits_reads_the_contact_of_a_case_and_a_supervisor_sees_the_read(
    api: Api, client: httpx.AsyncClient, token: TokenFactory
) -> None:
    case_id = (await api.receive())["case_id"]
    subject = (await api.get(case_id))["history"][0]["data"]["subject_id"]
    visits = token("service", subject="svc:visits")

    r = await client.get(
        url(case_id),
        params={"purpose": "callback"},
        headers={**visits, "X-Correlation-Id": "cb-7"},
    )

    assert r.status_code == 200, r.text
    assert r.json() == {
        "item_id": case_id,
        "subject_id": subject,
        "name": "王秀英",
        "phone": "13912345678",
    }
    reads = await client.get(
        "/v1/contact-reads", params={"item_id": case_id}, headers=token("supervisor")
    )
    assert reads.status_code == 200, reads.text
    [read] = reads.json()["items"]
    assert (read["reader"], read["purpose"], read["result"]) == (
        "svc:visits",
        "callback",
        "granted",
    )
    assert (read["subject_id"], read["station"], read["correlation_id"]) == (
        subject,
        api.STATION,
        "cb-7",
    )


async def test_the_contact_is_refused_outside_the_service_role_and_scope(
    api: Api, client: httpx.AsyncClient, token: TokenFactory
) -> None:
    case_id = (await api.receive())["case_id"]

    operator = await client.get(url(case_id), params={"purpose": "callback"}, headers=api.headers)
    elsewhere = await client.get(
        url(case_id),
        params={"purpose": "callback"},
        headers=token("service", scopes=[api.OTHER_BUREAU]),
    )
    unknown = await client.get(
        url(uuid.uuid4().hex), params={"purpose": "callback"}, headers=token("service")
    )
    no_purpose = await client.get(url(case_id), headers=token("service"))

    api.problem(operator, 403)
    # An out-of-scope case looks exactly like one that does not exist.
    assert api.problem(elsewhere, 404)["detail"] == f"no case {case_id} in your scope"
    api.problem(unknown, 404)
    api.problem(no_purpose, 422)
    reads = await client.get("/v1/contact-reads", headers=token("admin"))
    assert [r["result"] for r in reads.json()["items"]] == [
        "invalid_purpose",
        "not_found",
        "out_of_scope",
        "forbidden",
    ]


async def test_a_case_without_a_person_has_no_contact_to_lend(
    api: Api, client: httpx.AsyncClient, token: TokenFactory
) -> None:
    case_id = (await api.receive(person=None))["case_id"]

    r = await client.get(url(case_id), params={"purpose": "survey"}, headers=token("service"))

    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["phone"]) == (None, None)


async def test_the_contact_client_visits_uses_against_intake_and_erasure_answers_410(
    api: Api, app: FastAPI, client: httpx.AsyncClient, token: TokenFactory, settings: KernelSettings
) -> None:
    case_id = (await api.receive())["case_id"]
    subject = (await api.get(case_id))["history"][0]["data"]["subject_id"]
    service = token("service", subject="svc:visits")["Authorization"].split()[1]
    contacts = ContactClient(
        "http://intake.test", lambda: service, transport=httpx.ASGITransport(app=app)
    )

    async with contacts:
        contact = await contacts.fetch(case_id, "callback")
        assert contact.phone == "13912345678"
        with pytest.raises(ContactNotFound):
            await contacts.fetch(uuid.uuid4().hex, "callback")
        erased = await client.delete(f"/v1/subjects/{subject}", headers=token("admin"))
        assert erased.status_code == 204, erased.text
        with pytest.raises(ContactErased):
            await contacts.fetch(case_id, "callback")
