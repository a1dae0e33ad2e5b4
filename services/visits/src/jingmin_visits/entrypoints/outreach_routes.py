"""Visits (走访) and engagement events (警民互动) under /v1: plan, complete, fail, reschedule."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from eventkit.app import vault_of
from eventkit.auth import CurrentPrincipal, Principal, authorize
from eventkit.commands import IdempotencyKey, answer, command_request
from eventkit.personal import SubjectErased, subject_ref
from eventkit.problems import forbidden, not_found
from eventkit.schemas import PersonIn, revealed_history
from eventkit.store import load_on
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from jingmin_visits.adapters import outreach_model
from jingmin_visits.application.outreach import (
    ENGAGEMENT,
    READ_ROLES,
    VISIT,
    A,
    Decision,
    Kind,
    OutreachCommands,
)
from jingmin_visits.domain.engagement import Engagement, Opinion
from jingmin_visits.domain.facts import Fact
from jingmin_visits.domain.visit import Issue, Visit
from jingmin_visits.domain.vocabulary import VisitOutcome
from jingmin_visits.entrypoints import schemas as s

router = APIRouter()  # mounted under /v1 by routes.py
StreamId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


def _outreach(request: Request) -> OutreachCommands:
    commands: OutreachCommands = request.app.state.outreach
    return commands


async def _run(
    request: Request,
    principal: Principal,
    key: str | None,
    kind: Kind[A],
    stream_id: str,
    decide: Decision[A],
    *,
    new_in: str | None = None,
    expected_version: int | None = None,
) -> JSONResponse:
    command = await command_request(request, principal, key)
    code, body = await _outreach(request).execute(
        kind,
        command,
        stream_id,
        decide,
        new_in=new_in,
        expected_version=expected_version,
        status=201 if new_in else 200,
    )
    return answer(code, body, f"/v1/{kind.noun}s/{stream_id}")


async def _seal(
    request: Request, conn: asyncpg.Connection, subject_id: str, fields: Mapping[str, str | None]
) -> dict[str, Any]:
    """Encrypt the present fields under the subject; an erased subject's words are dropped."""
    present = {k: v for k, v in fields.items() if v}
    if not present:
        return {}
    try:
        return dict(await vault_of(request).encrypt_fields(conn, subject_id, present))
    except SubjectErased:
        return {}


def _subject_of(request: Request, person: PersonIn | None) -> str:
    """The person's stable reference, or a fresh one that links to nobody (anonymous)."""
    identifiers: dict[str, str | None] = (
        {"id_number": person.id_number, "phone": person.phone} if person else {}
    )
    return subject_ref(identifiers, request.app.state.settings)


async def _issues(
    request: Request,
    conn: asyncpg.Connection,
    subject_id: str,
    issues: list[s.IssueIn],
    area_type: str,
) -> list[Issue]:
    sealed = []
    for issue in issues:
        summary = await _seal(request, conn, subject_id, {"summary": issue.summary})
        sealed.append(
            Issue(
                kind=issue.kind.value,
                area_type=(issue.area_type or area_type),
                category=issue.category,
                branch=issue.branch.value if issue.branch else None,
                summary=summary.get("summary"),
            )
        )
    return sealed


# ---- visits ------------------------------------------------------------------------------


@router.post("/visits", status_code=201, response_model=s.OutreachAccepted, responses={409: {}})
async def schedule_visit(
    body: s.ScheduleVisit, request: Request, principal: CurrentPrincipal, key: IdempotencyKey = None
) -> JSONResponse:
    """Plan a visit to a household, business or institution under a programme."""
    visit_id = uuid.uuid4().hex

    async def decide(visit: Visit, conn: asyncpg.Connection, now: datetime) -> list[Fact]:
        data: dict[str, Any] = {
            "bureau": body.bureau,
            "station": body.station,
            "beat": body.beat,
            "programme": body.programme.value,
            "mode": body.mode.value,
            "target_type": body.target_type.value,
            "area_type": body.area_type.value,
            "officer_id": body.officer_id,
            "officer_rank": body.officer_rank,
            "planned_for": body.planned_for.isoformat(),
            "scheduled_by": principal.subject,
        }
        if body.person is not None:
            subject_id = _subject_of(request, body.person)
            person = await _seal(request, conn, subject_id, body.person.model_dump())
            data.update(subject_id=subject_id, person=person)
        data = {k: v for k, v in data.items() if v is not None}
        return visit.schedule(data, body.occurred_at or now, now)

    return await _run(request, principal, key, VISIT, visit_id, decide, new_in=body.station)


def _visit_subject(request: Request, visit: Visit) -> str:
    # Free text of a visit without a known person is still sealed, under a reference
    # of its own, so it can be erased like anyone's.
    return visit.subject_id or _subject_of(request, None)


@router.post(
    "/visits/{visit_id}/complete", response_model=s.OutreachAccepted, responses={409: {}, 422: {}}
)
async def complete_visit(
    visit_id: StreamId,
    body: s.CompleteVisit,
    request: Request,
    principal: CurrentPrincipal,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Record a completed visit: feedback class, opinions heard and the issues raised."""

    async def decide(visit: Visit, conn: asyncpg.Connection, now: datetime) -> list[Fact]:
        subject_id = _visit_subject(request, visit)
        opinions = await _seal(request, conn, subject_id, {"opinions": body.opinions})
        issues = await _issues(request, conn, subject_id, body.issues, visit.area_type)
        mode = body.mode.value if body.mode else visit.mode
        t = body.occurred_at or now
        return visit.complete(body.feedback, mode, opinions.get("opinions"), issues, t, now)

    return await _run(
        request, principal, key, VISIT, visit_id, decide, expected_version=body.expected_version
    )


@router.post(
    "/visits/{visit_id}/fail", response_model=s.OutreachAccepted, responses={409: {}, 422: {}}
)
async def fail_visit(
    visit_id: StreamId,
    body: s.FailVisit,
    request: Request,
    principal: CurrentPrincipal,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Nobody home or refused: recorded as a fact (the refusal rate counts it)."""

    async def decide(visit: Visit, conn: asyncpg.Connection, now: datetime) -> list[Fact]:
        note = await _seal(request, conn, _visit_subject(request, visit), {"note": body.note})
        t = body.occurred_at or now
        return visit.fail(VisitOutcome(body.outcome), note.get("note"), t, now)

    return await _run(
        request, principal, key, VISIT, visit_id, decide, expected_version=body.expected_version
    )


@router.post(
    "/visits/{visit_id}/reschedule",
    response_model=s.OutreachAccepted,
    responses={409: {}, 422: {}},
)
async def reschedule_visit(
    visit_id: StreamId,
    body: s.RescheduleVisit,
    request: Request,
    principal: CurrentPrincipal,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Move a pending or failed visit to a new time, optionally to another officer."""

    async def decide(visit: Visit, conn: asyncpg.Connection, now: datetime) -> list[Fact]:
        t = body.occurred_at or now
        return visit.reschedule(body.planned_for, body.reason, body.officer_id, t, now)

    return await _run(
        request, principal, key, VISIT, visit_id, decide, expected_version=body.expected_version
    )


@router.get("/visits", response_model=s.VisitPage)
async def list_visits(
    request: Request,
    principal: CurrentPrincipal,
    unit: Annotated[
        str | None, Query(pattern=r"^\d{9}(\d{2})?$", description="A station or beat code.")
    ] = None,
    officer: Annotated[
        str | None, Query(pattern=r"^([A-Za-z0-9_-]{1,32})$", description="`me` for mine.")
    ] = None,
    status: Annotated[str | None, Query(pattern=r"^(scheduled|completed|failed)$")] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> s.VisitPage:
    """Visit history in the caller's scope: of a beat or station, of an officer (`me`)."""
    if not principal.has_role(*READ_ROLES):
        raise forbidden(f"requires one of the roles {sorted(READ_ROLES)}")
    if unit is not None:
        authorize(principal, unit[:9])
    officer_id = principal.subject if officer == "me" else officer
    async with request.app.state.pool.acquire() as conn:
        rows = await outreach_model.list_visits(
            conn,
            patterns=principal.like_patterns(),
            unit=unit,
            officer_id=officer_id,
            status=status,
            since=since,
            limit=limit,
        )
    return s.VisitPage(items=[s.VisitSummary(**_fields(s.VisitSummary, r)) for r in rows])


def _fields(model: type[Any], row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in model.model_fields if k in row}


def _issues_out(rows: list[dict[str, Any]]) -> list[s.RaisedIssue]:
    return [s.RaisedIssue(**_fields(s.RaisedIssue, r), case_id=r["issue_id"]) for r in rows]


@router.get("/visits/{visit_id}", response_model=s.VisitDetail)
async def get_visit(
    visit_id: StreamId, request: Request, principal: CurrentPrincipal
) -> s.VisitDetail:
    """One visit, the cases its issues opened, and its history (decrypted for its readers)."""
    async with request.app.state.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM visits WHERE visit_id = $1", visit_id)
        if row is None:
            raise not_found(f"no visit {visit_id}")
        authorize(principal, row["station"], READ_ROLES)
        history = await load_on(conn, visit_id)
        events = await revealed_history(vault_of(request), conn, history)
        issues = await outreach_model.issues_of(conn, visit_id)
    return s.VisitDetail(
        visit=s.VisitSummary(**_fields(s.VisitSummary, dict(row))),
        issues=_issues_out(issues),
        history=events,
    )


# ---- engagement events -------------------------------------------------------------------


async def _opinions(
    request: Request, conn: asyncpg.Connection, opinions: list[s.OpinionIn], area_type: str
) -> list[Opinion]:
    sealed = []
    for opinion in opinions:
        subject_id = _subject_of(request, opinion.person)
        text = await _seal(request, conn, subject_id, {"text": opinion.text})
        issues = await _issues(
            request, conn, subject_id, [opinion.issue] if opinion.issue else [], area_type
        )
        named = opinion.person is not None and (opinion.person.id_number or opinion.person.phone)
        sealed.append(
            Opinion(
                feedback=opinion.feedback,
                # Only a person we can recognise again is named on the record.
                subject_id=subject_id if named or text or issues else None,
                text=text.get("text"),
                issue=issues[0] if issues else None,
            )
        )
    return sealed


@router.post(
    "/engagements", status_code=201, response_model=s.OutreachAccepted, responses={409: {}}
)
async def hold_engagement(
    body: s.HoldEngagement,
    request: Request,
    principal: CurrentPrincipal,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Record an engagement event (恳谈会, 开放日, 述职, 送法…) with its opinions."""
    engagement_id = uuid.uuid4().hex

    async def decide(e: Engagement, conn: asyncpg.Connection, now: datetime) -> list[Fact]:
        data: dict[str, Any] = {
            "bureau": body.bureau,
            "station": body.station,
            "beat": body.beat,
            "type": body.type.value,
            "venue": body.venue.value,
            "area_type": body.area_type.value,
            "organiser": body.organiser,
            "officer_ids": sorted(set(body.officer_ids) | {body.organiser}),
            "participants": body.participants,
            "recorded_by": principal.subject,
        }
        opinions = await _opinions(request, conn, body.opinions, body.area_type.value)
        data = {k: v for k, v in data.items() if v is not None}
        return e.hold(data, opinions, body.occurred_at or now, now)

    return await _run(
        request, principal, key, ENGAGEMENT, engagement_id, decide, new_in=body.station
    )


@router.post(
    "/engagements/{engagement_id}/opinions",
    response_model=s.OutreachAccepted,
    responses={409: {}, 422: {}},
)
async def record_opinions(
    engagement_id: StreamId,
    body: s.RecordOpinions,
    request: Request,
    principal: CurrentPrincipal,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Opinions written down after the event (e.g. from the feedback box)."""

    async def decide(e: Engagement, conn: asyncpg.Connection, now: datetime) -> list[Fact]:
        opinions = await _opinions(request, conn, body.opinions, e.area_type)
        return e.record(opinions, body.occurred_at or now, now)

    return await _run(
        request,
        principal,
        key,
        ENGAGEMENT,
        engagement_id,
        decide,
        expected_version=body.expected_version,
    )


@router.get("/engagements", response_model=s.EngagementPage)
async def list_engagements(
    request: Request,
    principal: CurrentPrincipal,
    station: Annotated[str | None, Query(pattern=r"^\d{9}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> s.EngagementPage:
    if not principal.has_role(*READ_ROLES):
        raise forbidden(f"requires one of the roles {sorted(READ_ROLES)}")
    if station is not None:
        authorize(principal, station)
    async with request.app.state.pool.acquire() as conn:
        rows = await outreach_model.list_engagements(
            conn, patterns=principal.like_patterns(), station=station, limit=limit
        )
    return s.EngagementPage(
        items=[s.EngagementSummary(**_fields(s.EngagementSummary, r)) for r in rows]
    )


@router.get("/engagements/{engagement_id}", response_model=s.EngagementDetail)
async def get_engagement(
    engagement_id: StreamId, request: Request, principal: CurrentPrincipal
) -> s.EngagementDetail:
    async with request.app.state.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT * FROM engagements WHERE engagement_id = $1", engagement_id
        )
        if row is None:
            raise not_found(f"no engagement {engagement_id}")
        authorize(principal, row["station"], READ_ROLES)
        history = await load_on(conn, engagement_id)
        events = await revealed_history(vault_of(request), conn, history)
        issues = await outreach_model.issues_of(conn, engagement_id)
    return s.EngagementDetail(
        engagement=s.EngagementSummary(**_fields(s.EngagementSummary, dict(row))),
        issues=_issues_out(issues),
        history=events,
    )
