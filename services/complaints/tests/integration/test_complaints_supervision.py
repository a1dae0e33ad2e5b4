"""Supervision over HTTP: orders that escalate when late, inspections, accountability."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from eventkit.contracts import SchemaRegistry
from jingmin_complaints.application.handlers import Commands
from jingmin_complaints.application.sweeper import sweep_once
from jingmin_complaints.integration.messages import SUPERVISION_TOPIC, SUPERVISION_TYPES

if TYPE_CHECKING:
    from conftest import Api, Clock, Stored, TokenFactory

pytestmark = pytest.mark.integration

ORDERS = "/v1/supervision/orders"


def order_body(api: Api, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "bureau": api.BUREAU,
        "owner_unit": api.STATION,
        "order_type": "tracking",
        "item_type": "case",
        "item_id": "a" * 32,
        "instructions": "请于期限内办结并报告",
    }
    body.update(overrides)
    return body


async def test_an_overdue_order_escalates_once_per_breach_up_to_the_city(
    api: Api,
    stored: Stored,
    clock: Clock,
    make_commands: Callable[[], Commands],
    token: TokenFactory,
    registry: SchemaRegistry,
) -> None:
    due = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    order_id = (await api.post(ORDERS, order_body(api, due_at=due), 201))["order_id"]
    assert await sweep_once(make_commands()) == 0
    assert (await api.get(ORDERS, status="overdue"))["items"] == []

    clock.advance(days=3)
    # Overdue before any sweep: supervisors see what is late, swept or not.
    [late] = (await api.get(ORDERS, status="overdue"))["items"]
    assert (late["order_id"], late["overdue"], late["breached"]) == (order_id, True, False)

    assert await sweep_once(make_commands()) == 2  # overdue + escalation to the bureau
    assert await sweep_once(make_commands()) == 0  # a restarted sweeper adds nothing
    detail = await api.get(f"{ORDERS}/{order_id}")
    order = detail["order"]
    assert (order["level"], order["owner_unit"], order["escalations"]) == ("bureau", "330602", 1)
    assert order["overdue"] is False  # a new deadline at the bureau level
    assert await api.get(ORDERS, status="overdue", level="bureau") == {
        "items": [],
        "next_cursor": None,
    }

    clock.advance(days=10)  # past the bureau's 3 working days
    assert await sweep_once(make_commands()) == 2  # overdue + escalation to the city
    clock.advance(days=10)
    assert await sweep_once(make_commands()) == 1  # at the top: overdue only
    clock.advance(days=10)
    assert await sweep_once(make_commands()) == 0

    types = await stored.event_types(order_id)
    assert types == [
        "OrderIssued",
        "OrderOverdue",
        "OrderEscalated",
        "OrderOverdue",
        "OrderEscalated",
        "OrderOverdue",
    ]
    city = token("supervisor", scopes=["3306"], subject="city-dc")
    [item] = (await api.get(ORDERS, headers=city, status="overdue", level="city"))["items"]
    assert (item["order_id"], item["owner_unit"], item["breached"]) == (order_id, "3306", True)
    # The owner reports back late, the supervisor closes it.
    await api.post(f"{ORDERS}/{order_id}/report", {"report": "已整改完毕"})
    await api.post(f"{ORDERS}/{order_id}/close", {"verdict": "rectified"})
    outbox = await stored.outbox(order_id)
    assert {r["topic"] for r in outbox} == {SUPERVISION_TOPIC}
    for row in outbox:
        registry.validate(row["type"], row["payload"])
    assert outbox[-2]["payload"]["on_time"] is False
    assert outbox[-1]["payload"]["escalations"] == 2
    assert "已整改" not in "".join(r["raw"] for r in outbox)


async def test_orders_inspections_and_accountability_emit_every_supervision_type(
    api: Api, stored: Stored, registry: SchemaRegistry, token: TokenFactory
) -> None:
    # A rectification order with the policy's default deadline, returned once, then closed.
    order = await api.post(ORDERS, order_body(api, order_type="rectification"), 201)
    order_id = order["order_id"]
    detail = await api.get(f"{ORDERS}/{order_id}")
    assert detail["order"]["due_at"] > datetime.now(UTC).isoformat()
    officer = token("officer", scopes=[api.STATION], subject="p1001")
    await api.post(f"{ORDERS}/{order_id}/report", {"report": "已完成整改"}, headers=officer)
    new_due = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    await api.post(
        f"{ORDERS}/{order_id}/return", {"reason": "incomplete", "due_at": new_due, "note": "缺台账"}
    )
    await api.post(f"{ORDERS}/{order_id}/report", {"report": "台账已补齐"}, headers=officer)
    await api.post(f"{ORDERS}/{order_id}/close", {"verdict": "rectified", "note": "复查通过"})

    inspection = await api.post(
        "/v1/supervision/inspections",
        {
            "bureau": api.BUREAU,
            "unit": api.STATION,
            "kind": "monthly_sampling",
            "period": "2026-10",
            "sample_size": 30,
        },
        201,
    )
    inspection_id = inspection["inspection_id"]
    for finding in (
        {
            "code": "case_file.missing_reply",
            "severity": "deficiency",
            "item_type": "case",
            "item_id": "b" * 32,
        },
        {"code": "case_file.late_entry", "severity": "observation"},
    ):
        await api.post(f"/v1/supervision/inspections/{inspection_id}/findings", finding)
    await api.post(f"/v1/supervision/inspections/{inspection_id}/complete", {"summary": "抽查30卷"})
    [listed] = await api.get("/v1/supervision/inspections")
    assert (listed["findings"], listed["deficiencies"], listed["status"]) == (2, 1, "completed")
    # Monthly sampling needs its period and sample size.
    r = await api.client.post(
        "/v1/supervision/inspections",
        json={"bureau": api.BUREAU, "unit": api.STATION, "kind": "monthly_sampling"},
        headers=api.headers,
    )
    api.problem(r, 422)

    action = await api.post(
        "/v1/supervision/accountability",
        {
            "bureau": api.BUREAU,
            "unit": api.STATION,
            "officer_id": "p2001",
            "kind": "admonishment_talk",
            "basis_type": "inspection",
            "basis_id": inspection_id,
        },
        201,
    )
    [taken] = await api.get("/v1/supervision/accountability")
    assert taken["action_id"] == action["action_id"] and "officer_id" not in taken

    rows = await stored.outbox()
    emitted = {r["type"] for r in rows}
    swept = {
        "jingmin.supervision.OrderOverdue.v1",
        "jingmin.supervision.OrderEscalated.v1",
        "jingmin.supervision.RecoveryFollowUpRequested.v1",
    }  # covered by the sweeper and consumer tests
    assert emitted | swept == set(SUPERVISION_TYPES)
    for row in rows:
        registry.validate(row["type"], row["payload"])
    raw = "".join(r["raw"] for r in rows)
    assert "p2001" not in raw and "复查通过" not in raw and "抽查30卷" not in raw


async def test_supervision_is_scoped_and_checks_its_input(
    api: Api, stored: Stored, token: TokenFactory
) -> None:
    order_id = (await api.post(ORDERS, order_body(api), 201))["order_id"]
    before = await stored.counts()
    other = token("supervisor", scopes=["330603"])
    api.problem(await api.client.get(f"{ORDERS}/{order_id}", headers=other), 403)
    assert (await api.get(ORDERS, headers=other))["items"] == []
    # A station officer reports back on their own station's order, not another's.
    stranger = token("officer", scopes=[api.OTHER_STATION])
    r = await api.client.post(f"{ORDERS}/{order_id}/report", json={"report": "x"}, headers=stranger)
    api.problem(r, 403)
    officer = token("officer")
    r = await api.client.post(
        f"{ORDERS}/{order_id}/close", json={"verdict": "rectified"}, headers=officer
    )
    api.problem(r, 403)
    for bad in (
        {"owner_unit": "330603001"},
        {"order_type": "service_recovery"},  # only a dissatisfied callback opens those
        {"due_at": (datetime.now(UTC) - timedelta(days=1)).isoformat()},
        {"item_type": "nothing"},
    ):
        r = await api.client.post(ORDERS, json=order_body(api, **bad), headers=api.headers)
        api.problem(r, 422)
    r = await api.client.post(
        f"{ORDERS}/{order_id}/close", json={"verdict": "rectified"}, headers=api.headers
    )
    api.problem(r, 409)  # nothing reported yet
    assert await stored.counts() == before
