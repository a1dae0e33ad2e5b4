"""Complaints HTTP API under /v1: thin routes that hand commands to the application layer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import asyncpg
from eventkit.app import erasure_route, vault_of
from eventkit.auth import CurrentPrincipal, authorize
from eventkit.commands import IdempotencyKey
from eventkit.personal import SubjectErased, subject_ref
from eventkit.policies import policy_routes
from eventkit.problems import forbidden, not_found
from eventkit.schemas import revealed_history
from eventkit.store import load_on
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from jingmin_complaints.adapters import read_model
from jingmin_complaints.application.handlers import (
    MANAGE_ROLES,
    READ_ROLES,
    RECEIVE_ROLES,
    REVEAL_ROLES,
    new_id,
)
from jingmin_complaints.application.receipts import new_receipt, receipt_hash
from jingmin_complaints.domain.common import Fact
from jingmin_complaints.domain.complaint import Complaint
from jingmin_complaints.domain.policy import ComplaintPolicy
from jingmin_complaints.domain.units import level_of, station_of
from jingmin_complaints.domain.vocabulary import Category, Status
from jingmin_complaints.entrypoints import schemas as s
from jingmin_complaints.entrypoints.common import (
    ItemIdPath,
    Step,
    cursor,
    item_command,
    parse_cursor,
    run,
)

router = APIRouter(prefix="/v1")
D = TypeVar("D", bound=Callable[..., Awaitable[list[Fact]]])
COMPLAINTS = "/complaints"


async def seal_complainant(
    request: Request,
    conn: asyncpg.Connection,
    complainant: dict[str, str],
    anonymous: bool,
    texts: dict[str, str | None],
) -> tuple[str, dict[str, Any]]:
    """The complaint's subject and its encrypted fields, in one key lookup.

    An anonymous complainant gets a random subject that links to nothing: their words are
    still encrypted (and erasable) without anyone knowing who they are.
    """
    settings = request.app.state.settings
    vault = vault_of(request)
    fields: dict[str, str | None] = (
        {} if anonymous else {f"complainant.{k}": v for k, v in complainant.items()}
    )
    fields.update(texts)
    present = {k: v for k, v in fields.items() if v}
    ids = {} if anonymous else {k: complainant.get(k) for k in ("id_number", "phone")}
    subject_id = subject_ref(ids, settings)
    try:
        sealed = dict(await vault.encrypt_fields(conn, subject_id, present))
    except SubjectErased:
        # Someone erased before complains again: served under a fresh, unlinkable subject.
        subject_id = subject_ref({}, settings)
        sealed = dict(await vault.encrypt_fields(conn, subject_id, present))
    person = {k.split(".", 1)[1]: v for k, v in sealed.items() if k.startswith("complainant.")}
    rest = {k: v for k, v in sealed.items() if not k.startswith("complainant.")}
    return subject_id, {**({"complainant": person} if person else {}), **rest}


def complaint_fields(
    *,
    bureau: str,
    subject_unit: str,
    channel: str,
    category: str,
    subject_id: str,
    anonymous: bool,
    code: str,
    received_by: str,
    sealed: dict[str, Any],
    subject_officer: str | None = None,
    intake_case_id: str | None = None,
    party_category: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "bureau": bureau,
        "station": station_of(subject_unit),
        "subject_unit": subject_unit,
        "subject_officer": subject_officer,
        "channel": channel,
        "category": category,
        "level": level_of(subject_unit),
        "subject_id": subject_id,
        "anonymous": anonymous,
        "intake_case_id": intake_case_id,
        "party_category": party_category,
        "receipt_hash": receipt_hash(code),
        "received_by": received_by,
        **sealed,
    }
    return {k: v for k, v in data.items() if v is not None}


@router.post(
    COMPLAINTS,
    status_code=201,
    response_model=s.Accepted,
    response_model_exclude_none=True,
    responses={403: {}, 409: {}, 422: {}},
)
async def receive_complaint(
    body: s.ReceiveComplaint,
    request: Request,
    principal: CurrentPrincipal,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Receive a complaint about police conduct; answers with the receipt code, once."""
    complaint_id = new_id()
    code = new_receipt()

    async def decide(
        complaint: Complaint, policy: ComplaintPolicy, conn: asyncpg.Connection, now: datetime
    ) -> list[Fact]:
        person = body.complainant.model_dump(exclude_none=True) if body.complainant else {}
        subject_id, sealed = await seal_complainant(
            request,
            conn,
            person,
            body.anonymous,
            {"account": body.account, "hoped_outcome": body.hoped_outcome, "receipt": code},
        )
        data = complaint_fields(
            bureau=body.bureau,
            subject_unit=body.subject_unit,
            channel=body.channel,
            category=body.category,
            subject_id=subject_id,
            anonymous=body.anonymous,
            code=code,
            received_by=principal.subject,
            sealed=sealed,
            subject_officer=body.subject_officer,
            intake_case_id=body.intake_case_id,
            party_category=body.party_category
            or await read_model.party_of(conn, body.intake_case_id),
        )
        return complaint.receive(data, policy, body.occurred_at or now, now)

    return await run(
        request,
        principal,
        key,
        Complaint,
        complaint_id,
        decide,
        roles=RECEIVE_ROLES,
        location=router.prefix + COMPLAINTS,
        new_in=station_of(body.subject_unit),
        status=201,
        extra={"receipt_code": code},
    )


def _command(path: str, body_type: type[s.Command]) -> Callable[[D], D]:
    return item_command(router, Complaint, COMPLAINTS, path, body_type, MANAGE_ROLES)


@_command("acknowledge", s.Acknowledge)
async def acknowledge(body: s.Acknowledge, step: Step[Complaint]) -> list[Fact]:
    """Accept the complaint (受理), starting the conclusion deadline; may correct the subject."""
    corrections: dict[str, Any] = {}
    if body.subject_unit is not None:
        corrections.update(
            subject_unit=body.subject_unit,
            station=station_of(body.subject_unit),
            level=level_of(body.subject_unit),
        )
    if body.subject_officer is not None:
        corrections["subject_officer"] = body.subject_officer
    if body.category is not None:
        corrections["category"] = body.category
    corrections.update(await step.seal(note=body.note))
    return step.item.acknowledge(corrections, step.policy, step.at, step.now)


@_command("assign", s.AssignInvestigator)
async def assign(body: s.AssignInvestigator, step: Step[Complaint]) -> list[Fact]:
    """Assign the investigator, who may be neither the subject nor from the subject's unit."""
    return step.item.assign(body.investigator_id, body.investigator_unit, step.at, step.now)


@_command("extend", s.Extend)
async def extend(body: s.Extend, step: Step[Complaint]) -> list[Fact]:
    """Extend the investigation once, with a reason and a new due date (at most 30 days later)."""
    new_due = step.policy.calendar.end_of(body.new_due_date)
    notes = await step.seal(note=body.note)
    return step.item.extend(body.reason, new_due, notes, step.policy, step.at, step.now)


@_command("conclude", s.Conclude)
async def conclude(body: s.Conclude, step: Step[Complaint]) -> list[Fact]:
    """Conclude: substantiated, partially, unsubstantiated or withdrawn, with the actions taken."""
    notes = await step.seal(findings=body.findings)
    return step.item.conclude(body.outcome, body.actions, notes, step.at, step.now)


@_command("reply", s.Reply)
async def reply(body: s.Reply, step: Step[Complaint]) -> list[Fact]:
    """Record the reply sent to the complainant."""
    return step.item.reply(body.mode, await step.seal(reply=body.reply), step.at, step.now)


@_command("close", s.Close)
async def close(body: s.Close, step: Step[Complaint]) -> list[Fact]:
    """Close an answered complaint (or one with nobody to answer)."""
    return step.item.close(step.at, step.now)


@_command("reopen", s.Reopen)
async def reopen(body: s.Reopen, step: Step[Complaint]) -> list[Fact]:
    """Reopen a closed complaint: the complainant disputes it, or a review finds cause."""
    notes = await step.seal(note=body.note)
    return step.item.reopen(body.reason, notes, step.policy, step.at, step.now)


@_command("remedy", s.RecordRemedy)
async def remedy(body: s.RecordRemedy, step: Step[Complaint]) -> list[Fact]:
    """Record that the underlying problem was put right: "fixed", apart from "closed"."""
    notes = await step.seal(note=body.note)
    return step.item.remedy(body.remedy, notes, step.at, step.now)


# ---- queries -----------------------------------------------------------------------------


def summary(row: dict[str, Any], now: datetime) -> s.ComplaintSummary:
    due = row.get("next_due_at")
    fields = {k: row[k] for k in s.ComplaintSummary.model_fields if k in row and k != "overdue"}
    return s.ComplaintSummary(**fields, overdue=bool(due and due < now))


@router.get(COMPLAINTS, response_model=s.ComplaintPage)
async def list_complaints(
    request: Request,
    principal: CurrentPrincipal,
    station: Annotated[str | None, Query(pattern=r"^\d{6}(\d{3})?$")] = None,
    status: Status | None = None,
    category: Category | None = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor_: Annotated[str | None, Query(alias="cursor")] = None,
) -> s.ComplaintPage:
    """List complaints in the caller's scope, newest first; filter by unit, status, overdue."""
    if not principal.has_role(*READ_ROLES):
        raise forbidden(f"requires one of the roles {sorted(READ_ROLES)}")
    if station is not None:
        authorize(principal, station)
    now = commands_now(request)
    async with request.app.state.pool.acquire() as conn:
        rows = await read_model.list_complaints(
            conn,
            patterns=principal.like_patterns(),
            station=station,
            status=status,
            category=category,
            overdue=overdue,
            now=now,
            limit=limit,
            before=parse_cursor(cursor_),
        )
    nxt = cursor(rows[-1]["received_at"], rows[-1]["complaint_id"]) if len(rows) == limit else None
    return s.ComplaintPage(items=[summary(r, now) for r in rows], next_cursor=nxt)


def commands_now(request: Request) -> datetime:
    """The service's clock (tests move it), so "overdue" agrees with the sweeper."""
    now: datetime = request.app.state.commands.clock()
    return now


@router.get(f"{COMPLAINTS}/{{complaint_id}}", response_model=s.ComplaintDetail)
async def get_complaint(
    complaint_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")],
    request: Request,
    principal: CurrentPrincipal,
) -> s.ComplaintDetail:
    """One complaint with its deadlines and full history, personal fields decrypted."""
    async with request.app.state.pool.acquire() as conn:
        row = await read_model.complaint_row(conn, complaint_id)
        if row is None:
            raise not_found(f"no complaint {complaint_id}")
        authorize(principal, row["station"], REVEAL_ROLES)
        deadlines = await read_model.complaint_deadlines(conn, complaint_id)
        history = await load_on(conn, complaint_id)
        events = await revealed_history(vault_of(request), conn, history)
    return s.ComplaintDetail(
        complaint=summary(row, commands_now(request)),
        deadlines={d["deadline"]: s.DeadlineOut(**d) for d in deadlines},
        history=events,
    )


# ---- policies and subjects -----------------------------------------------------------------

policy_routes(router, s.PolicyBody, what="complaint and supervision", read_roles=READ_ROLES)


erasure_route(router, table="complaints", who="a complainant")


__all__ = ["ItemIdPath", "router"]
