"""Supervision HTTP API under /v1/supervision: orders, inspections, accountability actions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from eventkit.app import vault_of
from eventkit.auth import CurrentPrincipal, Principal, authorize
from eventkit.commands import IdempotencyKey
from eventkit.problems import forbidden, not_found
from eventkit.schemas import revealed_history
from eventkit.store import load_on
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from jingmin_complaints.adapters import read_model
from jingmin_complaints.application.handlers import (
    ISSUE_ROLES,
    MANAGE_ROLES,
    READ_ROLES,
    REPORT_ROLES,
    new_id,
)
from jingmin_complaints.domain.common import Fact
from jingmin_complaints.domain.policy import ComplaintPolicy
from jingmin_complaints.domain.supervision import Accountability, Inspection, Order
from jingmin_complaints.domain.units import level_of, station_of
from jingmin_complaints.domain.vocabulary import Level, OrderType
from jingmin_complaints.entrypoints import schemas as s
from jingmin_complaints.entrypoints.common import (
    Step,
    cursor,
    item_command,
    parse_cursor,
    run,
)

router = APIRouter(prefix="/v1/supervision")
ORDERS, INSPECTIONS, ACCOUNTABILITY = "/orders", "/inspections", "/accountability"
# Free text written by supervisors about units is kept in this store and never published;
# it names no member of the public by design (the complainant's words live in complaints).


def _now(request: Request) -> datetime:
    now: datetime = request.app.state.commands.clock()
    return now


def _read(principal: Principal) -> None:
    if not principal.has_role(*READ_ROLES):
        raise forbidden(f"requires one of the roles {sorted(READ_ROLES)}")


# ---- orders (跟踪督办, 限期整改) ----------------------------------------------------------


@router.post(
    ORDERS,
    status_code=201,
    response_model=s.Accepted,
    response_model_exclude_none=True,
    responses={403: {}, 422: {}},
)
async def issue_order(
    body: s.IssueOrder, request: Request, principal: CurrentPrincipal, key: IdempotencyKey = None
) -> JSONResponse:
    """Issue a supervision order on an item: the owner unit acts by the deadline."""
    order_id = new_id()

    async def decide(
        order: Order, policy: ComplaintPolicy, conn: asyncpg.Connection, now: datetime
    ) -> list[Fact]:
        at = body.occurred_at or now
        due = body.due_at or policy.order_due(body.order_type, at)
        level = level_of(body.owner_unit)
        data: dict[str, Any] = {
            "bureau": body.bureau,
            "station": station_of(body.owner_unit),
            "owner_unit": body.owner_unit if level != Level.STATION else body.owner_unit[:9],
            "level": level,
            "order_type": OrderType(body.order_type),
            "item_type": body.item_type,
            "item_id": body.item_id,
            "issued_by": principal.subject,
        }
        if body.instructions:
            data["instructions"] = body.instructions
        return order.issue(data, due, at, now)

    return await run(
        request,
        principal,
        key,
        Order,
        order_id,
        decide,
        roles=ISSUE_ROLES,
        location=router.prefix + ORDERS,
        new_in=station_of(body.owner_unit),
        status=201,
    )


@item_command(router, Order, ORDERS, "report", s.ReportBack, REPORT_ROLES)
async def report_back(body: s.ReportBack, step: Step[Order]) -> list[Fact]:
    """Report back what the unit did; for service recovery this requests the follow-up callback."""
    return step.item.report_back({"report": body.report}, step.at, step.now)


@item_command(router, Order, ORDERS, "return", s.ReturnReport, MANAGE_ROLES)
async def return_report(body: s.ReturnReport, step: Step[Order]) -> list[Fact]:
    """Return a report that falls short (整改不到位), with a new deadline."""
    notes = {"note": body.note} if body.note else {}
    return step.item.return_report(body.reason, body.due_at, notes, step.at, step.now)


@item_command(router, Order, ORDERS, "close", s.CloseOrder, MANAGE_ROLES)
async def close_order(body: s.CloseOrder, step: Step[Order]) -> list[Fact]:
    """Close a reported order with the supervisor's verdict."""
    notes = {"note": body.note} if body.note else {}
    return step.item.close(body.verdict, notes, step.at, step.now)


def _order(row: dict[str, Any]) -> s.OrderSummary:
    return s.OrderSummary(**{k: row[k] for k in s.OrderSummary.model_fields if k in row})


@router.get(ORDERS, response_model=s.OrderPage)
async def list_orders(
    request: Request,
    principal: CurrentPrincipal,
    status: Annotated[str | None, Query(pattern=r"^(issued|reported|closed|overdue)$")] = None,
    order_type: OrderType | None = None,
    level: Level | None = None,
    station: Annotated[str | None, Query(pattern=r"^\d{6}(\d{3})?$")] = None,
    item_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor_: Annotated[str | None, Query(alias="cursor")] = None,
) -> s.OrderPage:
    """Orders in the caller's scope, newest first; `status=overdue` lists what is late."""
    _read(principal)
    if station is not None:
        authorize(principal, station)
    async with request.app.state.pool.acquire() as conn:
        rows = await read_model.list_orders(
            conn,
            patterns=principal.like_patterns(),
            station=station,
            status=status,
            order_type=order_type,
            level=level,
            item_id=item_id,
            now=_now(request),
            limit=limit,
            before=parse_cursor(cursor_),
        )
    nxt = cursor(rows[-1]["issued_at"], rows[-1]["order_id"]) if len(rows) == limit else None
    return s.OrderPage(items=[_order(r) for r in rows], next_cursor=nxt)


@router.get(f"{ORDERS}/{{order_id}}", response_model=s.OrderDetail)
async def get_order(
    order_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")],
    request: Request,
    principal: CurrentPrincipal,
) -> s.OrderDetail:
    """One order with its history (reports and notes included)."""
    async with request.app.state.pool.acquire() as conn:
        row = await read_model.order_row(conn, order_id, _now(request))
        if row is None:
            raise not_found(f"no order {order_id}")
        authorize(principal, row["station"], [*READ_ROLES, "officer"])
        history = await load_on(conn, order_id)
        events = await revealed_history(vault_of(request), conn, history)
    return s.OrderDetail(order=_order(row), history=events)


# ---- inspections (督察) ----------------------------------------------------------------------


@router.post(
    INSPECTIONS,
    status_code=201,
    response_model=s.Accepted,
    response_model_exclude_none=True,
    responses={403: {}, 422: {}},
)
async def start_inspection(
    body: s.StartInspection,
    request: Request,
    principal: CurrentPrincipal,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Start an inspection: online real-time, on-site, or a monthly case-file sample."""
    inspection_id = new_id()

    async def decide(
        inspection: Inspection, policy: ComplaintPolicy, conn: asyncpg.Connection, now: datetime
    ) -> list[Fact]:
        data: dict[str, Any] = {
            "bureau": body.bureau,
            "station": station_of(body.unit),
            "unit": body.unit,
            "kind": body.kind,
            "period": body.period,
            "sample_size": body.sample_size,
            "note": body.note,
            "inspector_id": principal.subject,
        }
        clean = {k: v for k, v in data.items() if v is not None}
        return inspection.start(clean, body.occurred_at or now, now)

    return await run(
        request,
        principal,
        key,
        Inspection,
        inspection_id,
        decide,
        roles=MANAGE_ROLES,
        location=router.prefix + INSPECTIONS,
        new_in=station_of(body.unit),
        status=201,
    )


@item_command(router, Inspection, INSPECTIONS, "findings", s.RecordFinding, MANAGE_ROLES)
async def record_finding(body: s.RecordFinding, step: Step[Inspection]) -> list[Fact]:
    """Record one finding of the inspection."""
    data = body.model_dump(
        include={"code", "severity", "item_type", "item_id", "note"}, exclude_none=True
    )
    return step.item.record_finding(data, step.at, step.now)


@item_command(router, Inspection, INSPECTIONS, "complete", s.CompleteInspection, MANAGE_ROLES)
async def complete_inspection(body: s.CompleteInspection, step: Step[Inspection]) -> list[Fact]:
    """Complete the inspection; its counts are published."""
    notes = {"summary": body.summary} if body.summary else {}
    return step.item.complete(notes, step.at, step.now)


@router.get(INSPECTIONS, response_model=list[s.InspectionSummary])
async def list_inspections(
    request: Request,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[s.InspectionSummary]:
    """Inspections in the caller's scope, newest first."""
    _read(principal)
    async with request.app.state.pool.acquire() as conn:
        rows = await read_model.list_rows(
            conn, "inspections", "started_at", principal.like_patterns(), limit
        )
    return [s.InspectionSummary(**r) for r in rows]


# ---- accountability (问责) ---------------------------------------------------------------


@router.post(
    ACCOUNTABILITY,
    status_code=201,
    response_model=s.Accepted,
    response_model_exclude_none=True,
    responses={403: {}, 422: {}},
)
async def take_accountability(
    body: s.TakeAccountability,
    request: Request,
    principal: CurrentPrincipal,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Record an accountability action against a unit (and, internally, an officer)."""
    action_id = new_id()

    async def decide(
        action: Accountability, policy: ComplaintPolicy, conn: asyncpg.Connection, now: datetime
    ) -> list[Fact]:
        data: dict[str, Any] = {
            "bureau": body.bureau,
            "station": station_of(body.unit),
            "unit": body.unit,
            "officer_id": body.officer_id,
            "kind": body.kind,
            "basis_type": body.basis_type,
            "basis_id": body.basis_id,
            "note": body.note,
            "decided_by": principal.subject,
        }
        clean = {k: v for k, v in data.items() if v is not None}
        return action.take(clean, body.occurred_at or now, now)

    return await run(
        request,
        principal,
        key,
        Accountability,
        action_id,
        decide,
        roles=ISSUE_ROLES,
        location=router.prefix + ACCOUNTABILITY,
        new_in=station_of(body.unit),
        status=201,
    )


@router.get(ACCOUNTABILITY, response_model=list[s.AccountabilitySummary])
async def list_accountability(
    request: Request,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[s.AccountabilitySummary]:
    """Accountability actions in the caller's scope, newest first (officers not shown)."""
    _read(principal)
    async with request.app.state.pool.acquire() as conn:
        rows = await read_model.list_rows(
            conn, "accountability_actions", "taken_at", principal.like_patterns(), limit
        )
    return [s.AccountabilitySummary(**r) for r in rows]
