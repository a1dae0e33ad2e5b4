"""A complaint about police conduct received through intake, ready for the complaints service."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from eventkit.contracts import SchemaRegistry

if TYPE_CHECKING:
    from conftest import Api, Stored, TokenFactory

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[4]


def complaint(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "channel": "window",
        "kind": "complaint",
        "category": "attitude",
        "demand": "窗口民警态度恶劣，推诿不办",
        "hoped_outcome": "道歉并依法办理",
    }
    body.update(overrides)
    return body


async def test_a_complaint_is_received_with_its_category_and_only_a_handover_promise(
    api: Api, stored: Stored
) -> None:
    case_id = (await api.receive(**complaint()))["case_id"]

    detail = await api.get(case_id)
    assert detail["case"]["kind"] == "complaint"
    assert set(detail["deadlines"]) == {"first_contact"}
    received = datetime.fromisoformat(detail["case"]["received_at"])
    due = datetime.fromisoformat(detail["deadlines"]["first_contact"]["due_at"])
    assert due - received == timedelta(days=1)
    [message] = await stored.outbox(case_id)
    payload = message["payload"]
    assert (payload["kind"], payload["category"], payload["channel"]) == (
        "complaint",
        "attitude",
        "window",
    )
    # What the complaints service consumes validates against the published contract.
    SchemaRegistry.load(REPO / "contracts").validate(message["type"], payload)
    assert "态度" not in message["raw"]
    page = await api.list(kind="complaint")
    assert [c["case_id"] for c in page["items"]] == [case_id]


@pytest.mark.parametrize(
    "overrides",
    [{"category": None}, {"category": "dispute.neighbour"}, {"category": "Attitude"}],
)
async def test_a_complaint_without_a_complaint_category_is_refused_and_writes_nothing(
    api: Api, client: httpx.AsyncClient, stored: Stored, overrides: dict[str, object]
) -> None:
    body = api.body(**complaint(**overrides))
    body = {k: v for k, v in body.items() if v is not None}

    r = await client.post("/v1/cases", json=body, headers=api.headers)

    problem = api.problem(r, 422)
    assert "complaint" in str(problem["errors"]) or overrides["category"] == "Attitude"
    assert (await stored.counts())["events"] == 0


async def test_a_complaint_is_rejected_only_with_a_specific_reason_and_an_explanation(
    api: Api,
) -> None:
    case_id = (await api.receive(**complaint(category="inaction")))["case_id"]

    await api.command(case_id, "rejection", expect=422, reason="other")
    await api.command(case_id, "rejection", expect=422, reason="duplicate", explanation=None)
    done = await api.command(case_id, "rejection", reason="duplicate", explanation="已由督察受理")
    assert done["status"] == "rejected"


async def test_a_bureau_sets_the_complaint_handover_time_in_its_policy(
    api: Api, client: httpx.AsyncClient, token: TokenFactory
) -> None:
    commander = token("commander")
    url = f"/v1/policies/{api.BUREAU}"
    r = await client.put(url, json={"complaint_first_contact_seconds": 4 * 3600}, headers=commander)
    assert r.status_code == 200, r.text
    assert r.json()["complaint_first_contact_seconds"] == 4 * 3600

    case_id = (await api.receive(**complaint(channel="visit")))["case_id"]

    detail = await api.get(case_id)
    received = datetime.fromisoformat(detail["case"]["received_at"])
    due = datetime.fromisoformat(detail["deadlines"]["first_contact"]["due_at"])
    assert due - received == timedelta(hours=4)
