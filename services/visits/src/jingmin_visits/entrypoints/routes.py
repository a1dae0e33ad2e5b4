"""Visits HTTP API under /v1: thin routes that hand commands to the application layer."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import asyncpg
from eventkit.app import vault_of
from eventkit.auth import CurrentPrincipal, Principal, authorize
from eventkit.commands import IdempotencyKey, command_request
from eventkit.contacts import (
    ContactErased,
    ContactError,
    ContactNotFound,
    ContactRefused,
    ContactUnavailable,
    ReadResult,
)
from eventkit.personal import SubjectErased
from eventkit.policies import policy_routes
from eventkit.problems import Problem, conflict, forbidden, not_found
from eventkit.schemas import revealed_history
from eventkit.store import load_on
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from jingmin_visits.adapters import read_model
from jingmin_visits.adapters.read_model import audit_read
from jingmin_visits.application import opt_outs
from jingmin_visits.application.handlers import (
    READ_ROLES,
    WRITE_ROLES,
    CallbackCommands,
    Decision,
    load,
)
from jingmin_visits.domain.callback import Callback
from jingmin_visits.domain.errors import InvalidCommand
from jingmin_visits.domain.facts import Fact
from jingmin_visits.domain.policy import CallbackPolicy
from jingmin_visits.entrypoints import schemas as s
from jingmin_visits.entrypoints.outreach_routes import router as outreach_router
from jingmin_visits.entrypoints.survey_routes import router as survey_waves_router

router = APIRouter(prefix="/v1")
router.include_router(outreach_router)
router.include_router(survey_waves_router)
CallbackId = Annotated[
    str, Path(pattern=r"^cb-[0-9a-f]{32}-[a-z_]{1,32}$", description="Callback id")
]
# Withdrawing an opt-out makes a person contactable again: a supervisor's decision.
OPT_OUT_ROLES = ("supervisor", "admin")
LIST_STATUSES = r"^(due|overdue|scheduled|suppressed|answered|declined|expired)$"


def _commands(request: Request) -> CallbackCommands:
    commands: CallbackCommands = request.app.state.commands
    return commands


async def _run(
    request: Request,
    principal: Principal,
    key: str | None,
    callback_id: str,
    decide: Decision,
    expected_version: int | None,
) -> JSONResponse:
    command = await command_request(request, principal, key)
    code, body = await _commands(request).execute(
        command, callback_id, decide, expected_version=expected_version
    )
    return JSONResponse(body, status_code=code)


@router.post(
    "/callbacks/{callback_id}/attempts", response_model=s.Accepted, responses={409: {}, 422: {}}
)
async def record_attempt(
    callback_id: CallbackId,
    body: s.RecordAttempt,
    request: Request,
    principal: CurrentPrincipal,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Record a call or SMS attempt: reached, unreachable or declined."""

    async def decide(cb: Callback, conn: asyncpg.Connection, now: datetime) -> list[Fact]:
        return cb.attempt(body.outcome, body.occurred_at or now, now)

    return await _run(request, principal, key, callback_id, decide, body.expected_version)


@router.post(
    "/callbacks/{callback_id}/assign", response_model=s.Accepted, responses={409: {}, 422: {}}
)
async def assign_callback(
    callback_id: CallbackId,
    body: s.AssignCallback,
    request: Request,
    principal: CurrentPrincipal,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Give the call to an officer; it then shows in their `assignee=me` list."""

    async def decide(cb: Callback, conn: asyncpg.Connection, now: datetime) -> list[Fact]:
        return cb.assign(body.officer_id, body.occurred_at or now, now)

    return await _run(request, principal, key, callback_id, decide, body.expected_version)


@router.post(
    "/callbacks/{callback_id}/answer", response_model=s.Accepted, responses={409: {}, 422: {}}
)
async def record_answer(
    callback_id: CallbackId,
    body: s.RecordAnswer,
    request: Request,
    principal: CurrentPrincipal,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Record the survey answer: satisfaction, sense of security, and an optional comment."""

    async def decide(cb: Callback, conn: asyncpg.Connection, now: datetime) -> list[Fact]:
        sealed = None
        if body.comment:
            if cb.subject_id is None:
                raise InvalidCommand("this callback has no subject to hold a comment")
            try:
                sealed = await vault_of(request).encrypt(conn, cb.subject_id, body.comment)
            except SubjectErased:
                sealed = None  # the person asked to be forgotten: the answer stays, the words not
        return cb.answer(
            body.satisfaction,
            body.security,
            sealed,
            body.occurred_at or now,
            now,
            wants_complaint=body.wants_complaint,
            complaint_category=body.complaint_category,
        )

    return await _run(request, principal, key, callback_id, decide, body.expected_version)


def _summary(row: Mapping[str, Any], now: datetime) -> s.CallbackSummary:
    due = row.get("due_at")
    return s.CallbackSummary(
        **{k: row[k] for k in s.CallbackSummary.model_fields if k in row and k != "overdue"},
        overdue=bool(row["status"] == "scheduled" and due and due < now),
    )


def _end_of_today(now: datetime) -> datetime:
    zone = ZoneInfo(CallbackPolicy().timezone)
    local = now.astimezone(zone)
    return datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)


@router.get("/callbacks", response_model=s.CallbackPage)
async def list_callbacks(
    request: Request,
    principal: CurrentPrincipal,
    status: Annotated[str | None, Query(pattern=LIST_STATUSES)] = None,
    station: Annotated[str | None, Query(pattern=r"^\d{9}$")] = None,
    assignee: Annotated[
        str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,32}$", description="`me` for mine.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> s.CallbackPage:
    """Callbacks in the caller's scope: `due` today, `overdue`, or by status; soonest first.

    `?status=due&assignee=me` is an officer's "my callbacks due today".
    """
    if not principal.has_role(*READ_ROLES):
        raise forbidden(f"requires one of the roles {sorted(READ_ROLES)}")
    if station is not None:
        authorize(principal, station)
    async with request.app.state.pool.acquire() as conn:
        now = await conn.fetchval("SELECT clock_timestamp()")
        rows = await read_model.list_callbacks(
            conn,
            patterns=principal.like_patterns(),
            station=station,
            status=status,
            now=now,
            end_of_day=_end_of_today(now),
            limit=limit,
            assignee=principal.subject if assignee == "me" else assignee,
        )
    return s.CallbackPage(items=[_summary(r, now) for r in rows])


@router.get("/callbacks/{callback_id}", response_model=s.CallbackDetail)
async def get_callback(
    callback_id: CallbackId, request: Request, principal: CurrentPrincipal
) -> s.CallbackDetail:
    """One callback with its full history (the comment decrypted for authorised roles)."""
    async with request.app.state.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT *, clock_timestamp() AS now FROM callbacks WHERE callback_id = $1",
            callback_id,
        )
        if row is None:
            raise not_found(f"no callback {callback_id}")
        authorize(principal, row["station"], READ_ROLES)
        history = await load_on(conn, callback_id)
        vault = vault_of(request)
        events = await revealed_history(vault, conn, history)
    return s.CallbackDetail(callback=_summary(dict(row), row["now"]), history=events)


@router.post("/opt-outs", status_code=201, responses={200: {}, 403: {}})
async def record_opt_out(
    body: s.OptOut, request: Request, principal: CurrentPrincipal
) -> JSONResponse:
    """Record that a person wants no callbacks; later resolutions are suppressed (opted_out)."""
    authorize(principal, body.bureau, WRITE_ROLES)
    commands = _commands(request)
    inserted = await opt_outs.record(
        commands.store, body.subject_id, body.bureau, principal, commands.clock(),
        request.headers.get("x-correlation-id"),
    )  # fmt: skip
    return JSONResponse(
        {"subject_id": body.subject_id, "opted_out": True}, status_code=201 if inserted else 200
    )


@router.post(
    "/opt-outs/{subject_id}/withdrawal",
    response_model=s.OptOutState,
    responses={403: {}, 404: {}, 422: {}},
)
async def withdraw_opt_out(
    subject_id: Annotated[str, Path(pattern=r"^sub_[A-Za-z0-9]{8,64}$")],
    body: s.WithdrawOptOut,
    request: Request,
    principal: CurrentPrincipal,
) -> s.OptOutState:
    """Withdraw a person's opt-out (they asked to be contacted again); recorded as a fact."""
    authorize(principal, body.bureau, OPT_OUT_ROLES)
    commands = _commands(request)
    removed = await opt_outs.withdraw(
        commands.store, subject_id, body.bureau, body.reason, principal, commands.clock(),
        request.headers.get("x-correlation-id"),
    )  # fmt: skip
    if not removed:
        raise not_found(f"no opt-out of {subject_id} recorded in bureau {body.bureau}")
    return s.OptOutState(subject_id=subject_id, opted_out=False)


policy_routes(router, s.PolicyBody, what="callback", read_roles=READ_ROLES)


_CONTACT_FAILURES: dict[type[ContactError], tuple[int, str, ReadResult]] = {
    ContactErased: (410, "the person asked to be forgotten; do not call", ReadResult.ERASED),
    ContactNotFound: (404, "the owning service has no contact for this item", ReadResult.NOT_FOUND),
    ContactUnavailable: (503, "the owning service did not answer; try again", ReadResult.ERROR),
    ContactRefused: (502, "the owning service refused this service's request", ReadResult.ERROR),
}


@router.get(
    "/callbacks/{callback_id}/contact",
    response_model=s.CallbackContact,
    responses={404: {}, 409: {}, 410: {}, 503: {}},
)
async def callback_contact(
    callback_id: CallbackId, request: Request, principal: CurrentPrincipal
) -> JSONResponse:
    """The number to call for an open callback, borrowed from the service that owns it.

    Both sides keep the read: the owner records this service's read, and this service
    records which officer asked (`contact_reads`), before anything is shown.
    """
    async with request.app.state.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM callbacks WHERE callback_id = $1", callback_id)
        if row is None:
            raise not_found(f"no callback {callback_id}")
        authorize(principal, row["station"], WRITE_ROLES)
        if row["status"] != "scheduled":
            raise conflict(f"callback {callback_id} is {row['status']}: there is no call to make")
        cb = load(callback_id, await load_on(conn, callback_id))
        try:
            contact = await request.app.state.contacts.fetch(
                cb.contact_owner,
                cb.contact_item,
                "callback",
                correlation_id=f"{principal.subject}.{callback_id}"[:128],
            )
        except ContactError as exc:
            status, detail, result = _CONTACT_FAILURES.get(
                type(exc), (502, "the contact could not be had", ReadResult.ERROR)
            )
            await audit_read(conn, principal, cb, result, status)
            raise Problem(status, "Contact not available", detail) from exc
        await audit_read(conn, principal, cb, ReadResult.GRANTED, 200)
    body = s.CallbackContact(callback_id=callback_id, name=contact.name, phone=contact.phone)
    return JSONResponse(body.model_dump(), headers={"Cache-Control": "no-store"})
