"""Intake HTTP API under /v1: thin routes that hand commands to the application layer."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from eventkit.app import erasure_route, vault_of
from eventkit.auth import CurrentPrincipal, Principal, authorize
from eventkit.commands import IdempotencyKey, answer, command_request, command_route
from eventkit.personal import SubjectErased, subject_ref
from eventkit.policies import policy_routes
from eventkit.problems import Problem, forbidden, not_found
from eventkit.schemas import LATEST, plausible, revealed_history
from eventkit.store import load_on
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from jingmin_intake.adapters import read_model
from jingmin_intake.application.handlers import (
    OFFICER_ROLES,
    READ_ROLES,
    WRITE_ROLES,
    CaseCommands,
    Decision,
    new_case_id,
    seal_for_subject,
)
from jingmin_intake.domain.case import Case, Fact
from jingmin_intake.domain.errors import InvalidCommand
from jingmin_intake.domain.policy import DeadlinePolicy
from jingmin_intake.domain.vocabulary import Channel, Kind, Priority, Status
from jingmin_intake.entrypoints import schemas as s

router = APIRouter(prefix="/v1")
CaseId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Case id")]


def _commands(request: Request) -> CaseCommands:
    commands: CaseCommands = request.app.state.commands
    return commands


async def _run(
    request: Request,
    principal: Principal,
    key: str | None,
    case_id: str,
    decide: Decision,
    *,
    expected_version: int | None = None,
    new_in: str | None = None,
    status: int = 200,
    roles: Sequence[str] = WRITE_ROLES,
) -> JSONResponse:
    command = await command_request(request, principal, key)
    code, body = await _commands(request).execute(
        command,
        case_id,
        decide,
        new_in=new_in,
        expected_version=expected_version,
        status=status,
        roles=roles,
    )
    return answer(code, body, f"/v1/cases/{body['case_id']}")


async def _encrypt(
    request: Request,
    conn: asyncpg.Connection,
    subject_id: str | None,
    fields: Mapping[str, str | None],
) -> dict[str, Any]:
    present = {k: v for k, v in fields.items() if v}
    if not present or subject_id is None:
        return {}
    try:
        return dict(await vault_of(request).encrypt_fields(conn, subject_id, present))
    except SubjectErased:
        # The person asked to be forgotten: the fact is still recorded (an open case must
        # be finishable), their words are not.
        return {}


@router.post("/cases", status_code=201, response_model=s.Accepted, responses={409: {}, 422: {}})
async def receive_case(
    body: s.ReceiveCase, request: Request, principal: CurrentPrincipal, key: IdempotencyKey = None
) -> JSONResponse:
    """Receive a case: any contact from the public, on any channel."""
    case_id = new_case_id()

    async def decide(
        case: Case, policy: DeadlinePolicy, conn: asyncpg.Connection, now: datetime
    ) -> list[Fact]:
        t = body.occurred_at or now
        person = body.person.model_dump(exclude_none=True) if body.person else {}
        subject_id, sealed = await _seal_new_case(request, conn, person, body)
        priority = body.priority or (
            Priority.URGENT if body.kind == Kind.ALARM else Priority.GENERAL
        )
        due = policy.on_receipt(body.kind, body.channel, priority, t)
        if body.committed_due_at is not None:
            if body.committed_due_at <= t:
                raise InvalidCommand("committed_due_at must be after the case was received")
            # The promise made to the person wins over a laxer policy default.
            due["resolution"] = min(body.committed_due_at, due.get("resolution", LATEST))
        data: dict[str, Any] = {
            "bureau": body.bureau,
            "station": body.station,
            "channel": body.channel,
            "kind": body.kind,
            "priority": priority,
            "area_type": body.area_type,
            "branch": body.branch,
            "party_category": body.party_category,
            "category": body.category,
            "subject_id": subject_id,
            "committed_due_at": _iso(body.committed_due_at),
            "appointment_at": _iso(body.appointment_at),
            "hours_type": body.hours_type,
            "source_ref": body.source_ref,
            "received_by": principal.subject,
            "person": {
                k[len("person.") :]: v for k, v in sealed.items() if k.startswith("person.")
            },
            **{k: v for k, v in sealed.items() if not k.startswith("person.")},
        }
        return case.receive({k: v for k, v in data.items() if v is not None}, due, t, now)

    return await _run(request, principal, key, case_id, decide, new_in=body.station, status=201)


async def _seal_new_case(
    request: Request, conn: asyncpg.Connection, person: Mapping[str, str], body: s.ReceiveCase
) -> tuple[str, dict[str, Any]]:
    """The case's subject and its encrypted fields, in one key lookup."""
    settings = request.app.state.settings
    fields: dict[str, str | None] = {f"person.{k}": v for k, v in person.items()}
    fields.update(demand=body.demand, hoped_outcome=body.hoped_outcome)
    subject_id = subject_ref({k: person.get(k) for k in ("id_number", "phone")}, settings)
    return await seal_for_subject(vault_of(request), settings, conn, subject_id, fields)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


@dataclass(frozen=True)
class Step:
    """What a command's decision sees: the case, its policy, the write transaction, when."""

    case: Case
    policy: DeadlinePolicy
    conn: asyncpg.Connection
    request: Request
    at: datetime  # when it happened: the body's occurred_at, else now
    now: datetime

    async def seal(self, **fields: str | None) -> dict[str, Any]:
        """Free-text fields encrypted under the case's subject."""
        return await _encrypt(self.request, self.conn, self.case.subject_id, fields)


CaseDecision = Callable[[Any, Step], Awaitable[list[Fact]]]


def _case_command(
    path: str, body_type: type[s.Command], roles: Sequence[str] = WRITE_ROLES
) -> Callable[[CaseDecision], CaseDecision]:
    """Register `POST /v1/cases/{case_id}/<path>`; the decorated function decides the facts.

    Every command shares the same edge: token, Idempotency-Key, expected_version and
    occurred_at. Only the decision differs, so that is all each command spells out.
    """

    def register(decide: CaseDecision) -> CaseDecision:
        async def run(
            case_id: str, body: Any, request: Request, principal: Principal, key: str | None
        ) -> JSONResponse:
            async def bound(
                case: Case, policy: DeadlinePolicy, conn: asyncpg.Connection, now: datetime
            ) -> list[Fact]:
                step = Step(case, policy, conn, request, body.occurred_at or now, now)
                return await decide(body, step)

            return await _run(
                request,
                principal,
                key,
                case_id,
                bound,
                expected_version=body.expected_version,
                roles=roles,
            )

        command_route(
            router,
            f"/cases/{{case_id}}/{path}",
            "case_id",
            CaseId,
            body_type,
            decide,
            run,
            response_model=s.Accepted,
        )
        return decide

    return register


@_case_command("first-contact", s.AssignFirstContact)
async def assign_first_contact(body: s.AssignFirstContact, step: Step) -> list[Fact]:
    """Assign the first-contact officer (首问负责制) and say whether the matter is in remit."""
    due = step.policy.on_acceptance(step.case.kind, step.at)
    return step.case.assign_first_contact(
        body.officer_id, body.unit, body.in_remit, due, step.at, step.now
    )


@_case_command("dispatch", s.Dispatch)
async def dispatch(body: s.Dispatch, step: Step) -> list[Fact]:
    """Dispatch officers (处警), recording the reason and purpose."""
    data = {
        "unit": body.unit,
        "officer_ids": body.officer_ids,
        **await step.seal(reason=body.reason, purpose=body.purpose),
    }
    due = step.policy.on_dispatch(step.case.area_type, step.at)
    return step.case.dispatch(data, due, step.at, step.now)


@_case_command("arrival", s.Arrive)
async def arrive(body: s.Arrive, step: Step) -> list[Fact]:
    """Record arrival on scene."""
    data = {"officer_id": body.officer_id} if body.officer_id else {}
    return step.case.arrive(data, step.at, step.now)


@_case_command("service-visits", s.RecordServiceVisit)
async def record_service_visit(body: s.RecordServiceVisit, step: Step) -> list[Fact]:
    """Record a visit for a service application: missing materials, next appointment."""
    data = {
        "missing_materials": body.missing_materials,
        "appointment_at": _iso(body.appointment_at),
        "hours_type": body.hours_type,
    }
    return step.case.record_service_visit(
        {k: v for k, v in data.items() if v is not None}, body.committed_due_at, step.at, step.now
    )


@_case_command("transfer", s.Transfer)
async def transfer(body: s.Transfer, step: Step) -> list[Fact]:
    """Transfer to an internal unit or an external agency, with what the person was told."""
    data = {
        "target_type": body.target_type,
        "target": body.target,
        "person_informed": body.person_informed,
        **await step.seal(explanation=body.explanation),
    }
    return step.case.transfer(data, step.at, step.now)


@_case_command("escalation", s.Escalate)
async def escalate(body: s.Escalate, step: Step) -> list[Fact]:
    """Escalate to the local government."""
    data = {"target": body.target, **await step.seal(reason=body.reason)}
    return step.case.escalate(data, step.at, step.now)


@_case_command("resolution", s.Resolve)
async def resolve(body: s.Resolve, step: Step) -> list[Fact]:
    """Resolve the case with the reply given to the person."""
    return step.case.resolve(await step.seal(reply=body.reply), step.at, step.now)


@_case_command("rejection", s.Reject)
async def reject(body: s.Reject, step: Step) -> list[Fact]:
    """Reject with a reason; an alarm also needs a specific reason and an explanation."""
    data = await step.seal(explanation=body.explanation)
    return step.case.reject(body.reason, data, bool(body.explanation), step.at, step.now)


@_case_command("reopen", s.Reopen)
async def reopen(body: s.Reopen, step: Step) -> list[Fact]:
    """Reopen a resolved, transferred, escalated, rejected or closed case."""
    case = step.case
    receipt = step.policy.on_receipt(case.kind, case.channel, case.priority, step.at)
    due = {k: v for k, v in receipt.items() if k == "resolution"}
    data = {"reason": body.reason, **await step.seal(note=body.note)}
    return case.reopen(data, due, step.at, step.now)


@_case_command("close", s.Close)
async def close(body: s.Close, step: Step) -> list[Fact]:
    """Close a case that has an outcome."""
    return step.case.close(step.at, step.now)


@_case_command("enforcement-decision", s.DecideEnforcement, roles=OFFICER_ROLES)
async def decide_enforcement(body: s.DecideEnforcement, step: Step) -> list[Fact]:
    """Record the enforcement decision on a case (执法决定): 执法回访 follows it."""
    data = await step.seal(note=body.note)
    return step.case.decide_enforcement(body.decision, data, step.at, step.now)


@_case_command("classification", s.Classify, roles=OFFICER_ROLES)
async def classify(body: s.Classify, step: Step) -> list[Fact]:
    """Classify a case as a crime with a victim and/or preventable, for the callbacks that
    follow them (刑事被侵害人回访告知, 可防性案件回访)."""
    data = await step.seal(note=body.note)
    return step.case.classify(
        body.crime_victim, body.preventable, body.category, data, step.at, step.now
    )


# ---- queries -----------------------------------------------------------------------------


def _cursor(received_at: datetime, case_id: str) -> str:
    return base64.urlsafe_b64encode(f"{received_at.isoformat()}|{case_id}".encode()).decode()


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, case_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return plausible(datetime.fromisoformat(stamp)), case_id
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        raise Problem(
            400,
            "Bad cursor",
            "the cursor is not one this API issued",
            type_="urn:jingmin:problem:bad-cursor",
        ) from exc


def _summary(row: Mapping[str, Any], now: datetime) -> s.CaseSummary:
    due = row.get("next_due_at")
    return s.CaseSummary(
        **{k: row[k] for k in s.CaseSummary.model_fields if k in row and k != "overdue"},
        overdue=bool(due and due < now),
    )


@router.get("/cases", response_model=s.CasePage)
async def list_cases(
    request: Request,
    principal: CurrentPrincipal,
    bureau: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
    station: Annotated[str | None, Query(pattern=r"^\d{9}$")] = None,
    status: Status | None = None,
    kind: Kind | None = None,
    channel: Channel | None = None,
    overdue: bool | None = None,
    source_ref: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=128,
            description="Cases whose source_ref starts with this, e.g. visits:visit:<id>#",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> s.CasePage:
    """List cases in the caller's scope, newest first; filter by unit, status, kind, overdue,
    or source (e.g. the cases a visit raised)."""
    if not principal.has_role(*READ_ROLES):
        raise forbidden(f"requires one of the roles {sorted(READ_ROLES)}")
    for code in (bureau, station):
        if code is not None:
            authorize(principal, code)
    async with request.app.state.pool.acquire() as conn:
        rows = await read_model.list_cases(
            conn,
            patterns=principal.like_patterns(),
            bureau=bureau,
            station=station,
            status=status,
            kind=kind,
            channel=channel,
            overdue=overdue,
            limit=limit,
            before=_parse_cursor(cursor) if cursor else None,
            source_ref=source_ref,
        )
        now = await conn.fetchval("SELECT clock_timestamp()")
    items = [_summary(r, now) for r in rows]
    nxt = _cursor(rows[-1]["received_at"], rows[-1]["case_id"]) if len(rows) == limit else None
    return s.CasePage(items=items, next_cursor=nxt)


@router.get("/cases/{case_id}", response_model=s.CaseDetail)
async def get_case(case_id: CaseId, request: Request, principal: CurrentPrincipal) -> s.CaseDetail:
    """One case with its deadlines and full event history (personal fields decrypted)."""
    async with request.app.state.pool.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT c.*, (SELECT min(d.due_at) FROM case_deadlines d
                  WHERE d.case_id = c.case_id AND d.met_at IS NULL AND NOT d.cancelled)
                  AS next_due_at, clock_timestamp() AS now
               FROM cases c WHERE case_id = $1""",
            case_id,
        )
        if row is None:
            raise not_found(f"no case {case_id}")
        authorize(principal, row["station"], READ_ROLES)
        deadlines = await conn.fetch(
            "SELECT deadline, due_at, met_at, breached_at, cancelled FROM case_deadlines "
            "WHERE case_id = $1 ORDER BY due_at",
            case_id,
        )
        history = await load_on(conn, case_id)
        vault = vault_of(request)
        events = await revealed_history(vault, conn, history)
    return s.CaseDetail(
        case=_summary(dict(row), row["now"]),
        deadlines={
            d["deadline"]: {k: d[k] for k in ("due_at", "met_at", "breached_at", "cancelled")}
            for d in deadlines
        },
        history=events,
    )


# ---- policies and subjects -----------------------------------------------------------------


policy_routes(router, s.PolicyBody, what="deadline", read_roles=READ_ROLES)


erasure_route(router, table="cases", who="a person")
