"""Resident survey waves (民意调查) under /v1: define, import frames, draw, fieldwork, estimates."""

from __future__ import annotations

import csv
import io
import re
import secrets
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from eventkit.app import vault_of
from eventkit.auth import CurrentPrincipal, Principal, authorize
from eventkit.commands import IdempotencyKey, answer, command_request, execute
from eventkit.personal import ERASED, SubjectErased, subject_ref
from eventkit.problems import Problem, forbidden, not_found
from eventkit.store import PostgresTransaction, load_on
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from jingmin_visits.adapters import read_model
from jingmin_visits.application.handlers import CallbackCommands
from jingmin_visits.application.survey import (
    FIELD_ROLES,
    LINK_ROLES,
    ORGANISER_ROLES,
    READ_ROLES,
    SURVEY_WAVE,
    Decision,
    load,
)
from jingmin_visits.application.wave_sms import WaveSms, area_type_of
from jingmin_visits.domain.errors import DomainError, InvalidCommand, NotFound
from jingmin_visits.domain.estimates import wave_estimates
from jingmin_visits.domain.facts import Fact
from jingmin_visits.domain.survey import (
    MAX_FRAME,
    QUESTIONNAIRE,
    QUESTIONNAIRE_VERSION,
    STRATA,
    Outcome,
    SampledUnit,
    SurveyWave,
)
from jingmin_visits.entrypoints import survey_schemas as s

router = APIRouter()  # mounted under /v1 by routes.py
WaveId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Survey wave id")]
UnitId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Frame unit id")]
Station = Annotated[str, Path(pattern=r"^\d{9}$", description="Station code")]

# The frame file's columns: the strata are required, the personal fields optional (a
# household register may hold only an address). Anything else is refused, so a column of
# ID numbers or notes cannot slip in unencrypted.
PERSON_COLUMNS = ("name", "phone", "id_number", "address")
FRAME_COLUMNS = frozenset(PERSON_COLUMNS) | frozenset(STRATA)
_PERSON_LIMITS = {"name": 200, "phone": 20, "id_number": 18, "address": 200}


async def _run(
    request: Request,
    principal: Principal,
    key: str | None,
    wave_id: str,
    decide: Decision,
    **options: Any,
) -> JSONResponse:
    """Run one command on a wave; `roles` None: the guard authorises (on the unit's station)."""
    code, body = await _execute(request, principal, key, wave_id, decide, **options)
    return answer(code, body, f"/v1/survey-waves/{wave_id}")


async def _execute(
    request: Request,
    principal: Principal,
    key: str | None,
    wave_id: str,
    decide: Decision,
    *,
    roles: tuple[str, ...] | None,
    new_in: str | None = None,
    guard: Any = None,
    expected_version: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    # The service's command handlers lend their store and clock (one composition root).
    handlers: CallbackCommands = request.app.state.commands
    return await execute(
        handlers.store,
        await command_request(request, principal, key),
        SURVEY_WAVE,
        wave_id,
        decide,
        roles=roles,
        clock=handlers.clock,
        new_in=new_in,
        fresh_id=new_in is not None,
        guard=guard,
        expected_version=expected_version,
        status=201 if new_in else 200,
        extra=extra,
    )


def _in_bureau(principal: Principal, bureau: str, roles: tuple[str, ...]) -> None:
    """Readers of a wave: the bureau's own scope, or a station of it (fieldwork)."""
    if not principal.has_role(*roles):
        raise forbidden(f"requires one of the roles {sorted(roles)}")
    if not (principal.covers(bureau) or any(sc.startswith(bureau) for sc in principal.scopes)):
        raise forbidden(f"your scope does not cover {bureau!r}")


async def _wave(conn: asyncpg.Connection, wave_id: str) -> SurveyWave:
    wave = load(wave_id, await load_on(conn, wave_id))
    if wave.status is None:
        raise not_found(f"no survey wave {wave_id}")
    return wave


# ---- the wave -----------------------------------------------------------------------------


@router.post("/survey-waves", status_code=201, response_model=s.WaveAccepted, responses={409: {}})
async def define_wave(
    body: s.DefineWave, request: Request, principal: CurrentPrincipal, key: IdempotencyKey = None
) -> JSONResponse:
    """Define a survey wave: period, questionnaire, target precision, response rate, modes."""
    wave_id = uuid.uuid4().hex

    async def decide(wave: SurveyWave, tx: PostgresTransaction, now: datetime) -> list[Fact]:
        data: dict[str, Any] = {
            "bureau": body.bureau,
            "title": body.title,
            "period_start": body.period_start.isoformat(),
            "period_end": body.period_end.isoformat(),
            "questionnaire_version": body.questionnaire_version,
            "precision": body.precision,
            "station_precision": dict(body.station_precision),
            "confidence": body.confidence,
            "expected_response_rate": body.expected_response_rate,
            "modes": [m.value for m in body.modes],
            "defined_by": principal.subject,
        }
        return wave.define(data, body.occurred_at or now, now)

    return await _run(
        request, principal, key, wave_id, decide, roles=ORGANISER_ROLES, new_in=body.bureau
    )


@router.get("/survey-waves", response_model=s.WavePage)
async def list_waves(
    request: Request,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> s.WavePage:
    """Survey waves of the bureaus in the caller's scope, newest period first."""
    if not principal.has_role(*READ_ROLES):
        raise forbidden(f"requires one of the roles {sorted(READ_ROLES)}")
    async with request.app.state.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT * FROM survey_waves
               WHERE bureau LIKE ANY($1::text[])
                  OR bureau IN (SELECT left(sc, 6) FROM unnest($2::text[]) AS sc)
               ORDER BY period_start DESC, wave_id LIMIT $3""",
            principal.like_patterns(),
            list(principal.scopes),
            limit,
        )
    return s.WavePage(items=[s.WaveSummary(**_fields(s.WaveSummary, r)) for r in rows])


def _fields(model: type[Any], row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in model.model_fields if k in row}


@router.get("/survey-waves/{wave_id}", response_model=s.WaveDetail, responses={404: {}})
async def get_wave(wave_id: WaveId, request: Request, principal: CurrentPrincipal) -> s.WaveDetail:
    """One wave: its definition, questionnaire, and each station's frame and draw."""
    async with request.app.state.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM survey_waves WHERE wave_id = $1", wave_id)
        if row is None:
            raise not_found(f"no survey wave {wave_id}")
        _in_bureau(principal, row["bureau"], READ_ROLES)
        wave = await _wave(conn, wave_id)
    stations = [
        s.StationFrame(
            station=station,
            frame_size=len(units),
            parts=wave.frame_parts[station],
            margins=wave.frame_margins[station],
            drawn=station in wave.draws,
            seed=wave.draws[station].seed if station in wave.draws else None,
            sample_size=wave.draws[station].sample_size if station in wave.draws else None,
        )
        for station, units in sorted(wave.frames.items())
    ]
    return s.WaveDetail(
        wave=s.WaveSummary(**_fields(s.WaveSummary, dict(row))),
        precision=wave.precision,
        station_precision=wave.station_precision,
        confidence=wave.confidence,
        expected_response_rate=wave.expected_response_rate,
        modes=list(wave.modes),
        questionnaire_version=QUESTIONNAIRE_VERSION,
        questionnaire=list(QUESTIONNAIRE),
        stations=stations,
    )


# ---- frames and draws ---------------------------------------------------------------------


def _parse_frame(raw: bytes) -> list[dict[str, str]]:
    """The CSV's rows as dicts; every problem names its line, and nothing is stored."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidCommand("the frame must be UTF-8 CSV") from exc
    if "\x00" in text:
        raise InvalidCommand("the frame holds a NUL character")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = set(reader.fieldnames or ())
    if not set(STRATA) <= columns or not columns <= FRAME_COLUMNS:
        raise InvalidCommand(
            f"the frame's header names {sorted(STRATA)} and optionally {list(PERSON_COLUMNS)},"
            " nothing else"
        )
    rows = []
    try:
        for line, row in enumerate(reader, start=2):
            if None in row or any(v is None for v in row.values()):
                raise InvalidCommand(f"line {line}: not as many fields as the header")
            clean = {k: v.strip() for k, v in row.items() if k is not None and v is not None}
            for dim, vocabulary in STRATA.items():
                if clean[dim] not in {c.value for c in vocabulary}:
                    allowed = [c.value for c in vocabulary]
                    raise InvalidCommand(f"line {line}: {dim} is one of {allowed}")
            for name, limit in _PERSON_LIMITS.items():
                if len(clean.get(name, "")) > limit:
                    raise InvalidCommand(f"line {line}: {name} is longer than {limit}")
            rows.append(clean)
            if len(rows) > MAX_FRAME:
                raise InvalidCommand(f"a frame holds at most {MAX_FRAME} units")
    except csv.Error as exc:
        raise InvalidCommand(f"the frame is not valid CSV: {exc}") from exc
    if not rows:
        raise InvalidCommand("the frame has no rows")
    return rows


@router.post(
    "/survey-waves/{wave_id}/frames/{station}",
    response_model=s.WaveAccepted,
    responses={404: {}, 409: {}, 422: {}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "Header `age_band,sex,residence` and optionally `name,phone,"
            "id_number,address`; UTF-8. Personal fields are encrypted per person.",
        }
    },
)
async def import_frame(
    wave_id: WaveId,
    station: Station,
    request: Request,
    principal: CurrentPrincipal,
    part: Annotated[int, Query(ge=1, le=MAX_FRAME, description="1 starts the frame afresh")] = 1,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Import one part of a station's sample frame from CSV (residents or households)."""
    # The station names the bureau: a foreign token is refused before the file is read.
    authorize(principal, station, ORGANISER_ROLES)
    rows = _parse_frame(await request.body())
    vault = vault_of(request)
    settings = request.app.state.settings

    async def decide(wave: SurveyWave, tx: PostgresTransaction, now: datetime) -> list[Fact]:
        units = []
        for row in rows:
            person = {k: row[k] for k in PERSON_COLUMNS if row.get(k)}
            # The same person has the same reference everywhere (opt-outs, erasure).
            subject_id = subject_ref(
                {"id_number": person.get("id_number"), "phone": person.get("phone")}, settings
            )
            sealed: dict[str, Any] = {}
            if person:
                try:
                    sealed = dict(await vault.encrypt_fields(tx.connection, subject_id, person))
                except SubjectErased:
                    sealed = {}  # forgotten: stays in the frame, cannot be contacted
            units.append(
                {
                    "unit_id": uuid.uuid4().hex,
                    "subject_id": subject_id,
                    **{dim: row[dim] for dim in STRATA},
                    "person": sealed,
                }
            )
        return wave.import_frame(station, part, units, now, now)

    return await _run(
        request,
        principal,
        key,
        wave_id,
        decide,
        roles=ORGANISER_ROLES,
        extra={"station": station},
    )


@router.post(
    "/survey-waves/{wave_id}/draws",
    response_model=s.WaveAccepted,
    responses={404: {}, 409: {}, 422: {}},
)
async def draw_sample(
    wave_id: WaveId,
    body: s.DrawSample,
    request: Request,
    principal: CurrentPrincipal,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Draw a station's sample from its frame: size from the precision, seed recorded."""
    authorize(principal, body.station, ORGANISER_ROLES)
    seed = body.seed if body.seed is not None else secrets.randbelow(2**63)

    async def decide(wave: SurveyWave, tx: PostgresTransaction, now: datetime) -> list[Fact]:
        frame = wave.frames.get(body.station, [])
        opted_out = await tx.connection.fetch(
            "SELECT subject_id FROM opt_outs WHERE subject_id = ANY($1::text[])",
            [u.subject_id for u in frame],
        )
        return wave.draw(
            body.station, seed, {r["subject_id"] for r in opted_out}, body.occurred_at or now, now
        )

    return await _run(
        request,
        principal,
        key,
        wave_id,
        decide,
        roles=ORGANISER_ROLES,
        extra={"station": body.station, "seed": seed},
    )


@router.get("/survey-waves/{wave_id}/sample", response_model=s.SamplePage, responses={404: {}})
async def list_sample(
    wave_id: WaveId,
    request: Request,
    principal: CurrentPrincipal,
    station: Annotated[str, Query(pattern=r"^\d{9}$")],
) -> s.SamplePage:
    """A station's sampled units for fieldwork, in draw order (no personal data)."""
    authorize(principal, station, READ_ROLES)
    async with request.app.state.pool.acquire() as conn:
        wave = await _wave(conn, wave_id)
    draw = wave.draws.get(station)
    items = [] if draw is None else [wave.units[u] for u in draw.unit_ids]
    return s.SamplePage(
        items=[
            s.SampledUnitOut(
                unit_id=u.unit_id,
                station=u.station,
                strata=u.strata,
                do_not_contact=u.do_not_contact,
                attempts=len(u.attempts),
                disposition=u.disposition.value,
            )
            for u in items
        ]
    )


# ---- fieldwork ----------------------------------------------------------------------------


def _unit_guard(unit_id: str, roles: tuple[str, ...]) -> Any:
    """Authorise on the sampled unit's station; an unknown unit is only named to the bureau."""

    def guard(wave: SurveyWave, principal: Principal) -> None:
        unit = wave.units.get(unit_id)
        if unit is None:
            authorize(principal, wave.bureau, roles)
            raise NotFound(f"unit {unit_id} is not in the sample of wave {wave.wave_id}")
        authorize(principal, unit.station, roles)

    return guard


@router.post(
    "/survey-waves/{wave_id}/units/{unit_id}/attempts",
    response_model=s.WaveAccepted,
    responses={403: {}, 404: {}, 409: {}, 422: {}},
)
async def record_attempt(
    wave_id: WaveId,
    unit_id: UnitId,
    body: s.RecordSurveyAttempt,
    request: Request,
    principal: CurrentPrincipal,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Record one attempt on a sampled unit, with the answers if it was interviewed."""
    vault = vault_of(request)
    handlers: CallbackCommands = request.app.state.commands

    async def decide(wave: SurveyWave, tx: PostgresTransaction, now: datetime) -> list[Fact]:
        unit = wave.unit(unit_id)
        # The callbacks' quiet hours, in the bureau's time zone: one rule for every call.
        policy = await handlers.policies.get(tx.connection, wave.bureau)
        sealed = None
        if body.comment:
            if Outcome(body.outcome) not in (Outcome.COMPLETED, Outcome.PARTIAL):
                raise InvalidCommand("only a completed or partial interview carries a comment")
            try:
                sealed = await vault.encrypt(tx.connection, unit.subject_id, body.comment)
            except SubjectErased:
                sealed = None  # the person asked to be forgotten: the answer stays, not the words
        problem = None
        if body.problem_text:
            if Outcome(body.outcome) not in (Outcome.COMPLETED, Outcome.PARTIAL):
                raise InvalidCommand("only a completed or partial interview carries a problem")
            try:
                problem = await vault.encrypt(tx.connection, unit.subject_id, body.problem_text)
            except SubjectErased:
                problem = None
        answers = body.answers.codes() if body.answers else {}
        t = body.occurred_at or now
        quiet = policy.out_of_quiet_hours(t) != t
        return wave.record_attempt(
            unit_id,
            body.mode.value,
            body.outcome,
            answers,
            sealed,
            t,
            now,
            quiet_hours=quiet,
            # The standing opt-out now, not at the draw: a withdrawn one makes the unit
            # contactable again, a new one stops contact at once.
            opted_out=await read_model.is_opted_out(tx.connection, unit.subject_id),
            problem_text=problem,
            # The contract's officer id: a token subject outside its alphabet is mapped into it.
            raised_by=re.sub(r"[^A-Za-z0-9_-]", "-", principal.subject)[:32],
            area_type=body.area_type or area_type_of(wave.bureau),
        )

    return await _run(
        request,
        principal,
        key,
        wave_id,
        decide,
        roles=None,
        guard=_unit_guard(unit_id, FIELD_ROLES),
        expected_version=body.expected_version,
        extra={"unit_id": unit_id},
    )


@router.get(
    "/survey-waves/{wave_id}/units/{unit_id}/contact",
    response_model=s.UnitContact,
    responses={404: {}},
)
async def unit_contact(
    wave_id: WaveId, unit_id: UnitId, request: Request, principal: CurrentPrincipal
) -> s.UnitContact:
    """The sampled person's name, number and address for the interviewer (audited).

    Every read of a wave that exists is one row in `contact_reads`, refused ones too, so
    a supervisor sees who tried to reach whom, not only who did.
    """
    item = f"{wave_id}/{unit_id}"
    async with request.app.state.pool.acquire() as conn:
        wave = await _wave(conn, wave_id)
        unit = wave.units.get(unit_id)
        try:
            _unit_guard(unit_id, FIELD_ROLES)(wave, principal)
            assert unit is not None
            if await read_model.is_opted_out(conn, unit.subject_id):
                raise forbidden("this person opted out: do not contact")
        except (Problem, DomainError) as refused:
            result = {403: "forbidden", 404: "not_found"}.get(refused.status, "error")
            await _audit(conn, request, principal, item, unit, result, refused.status)
            raise
        frame_unit = next(u for u in wave.frames[unit.station] if u.unit_id == unit_id)
        async with conn.transaction():
            revealed = await vault_of(request).reveal_fields(conn, frame_unit.person)
            erased = not revealed or all(v in (None, ERASED) for v in revealed.values())
            # The read is recorded before anything is shown, in the same transaction.
            await _audit(
                conn, request, principal, item, unit, "erased" if erased else "granted", 200
            )
    shown = {k: revealed.get(k) for k in ("name", "phone", "address")}
    return s.UnitContact(unit_id=unit_id, **shown)


async def _audit(
    conn: asyncpg.Connection,
    request: Request,
    principal: Principal,
    item: str,
    unit: SampledUnit | None,
    result: str,
    status: int,
) -> None:
    await read_model.record_read(
        conn,
        principal,
        "survey",
        item,
        unit.subject_id if unit else None,
        unit.station if unit else None,
        result,
        status,
        request.headers.get("x-correlation-id"),
    )


# ---- estimates ----------------------------------------------------------------------------


@router.get("/survey-waves/{wave_id}/estimates", response_model=s.Estimates, responses={404: {}})
async def estimates(wave_id: WaveId, request: Request, principal: CurrentPrincipal) -> s.Estimates:
    """Per station and county: AAPOR RR1/RR3, satisfaction and security, weighted, with CIs."""
    async with request.app.state.pool.acquire() as conn:
        wave = await _wave(conn, wave_id)
    # The county's figures are the bureau's: a station's token does not see its neighbours.
    authorize(principal, wave.bureau, READ_ROLES)
    return s.Estimates(**wave_estimates(wave))


# ---- the wave questionnaire by SMS --------------------------------------------------------


@router.post(
    "/survey-waves/{wave_id}/invitations",
    response_model=s.InvitationsSent,
    responses={403: {}, 404: {}, 409: {}, 422: {}},
)
async def send_invitations(
    wave_id: WaveId, body: s.SendInvitations, request: Request, principal: CurrentPrincipal
) -> s.InvitationsSent:
    """Send a station's sampled units their single-use questionnaire links by SMS.

    Idempotent: units already sent a valid link, or that answered, or opted out, get
    nothing; each SMS sent is a `SurveyInvitationSent` fact and an audited number read.
    """
    authorize(principal, body.station, ORGANISER_ROLES)
    async with request.app.state.pool.acquire() as conn:
        wave = await _wave(conn, wave_id)
    if not body.station.startswith(wave.bureau):
        raise not_found(f"station {body.station} is not in wave {wave_id}'s bureau")
    sms: WaveSms = request.app.state.wave_sms
    counts = await sms.invite_station(
        wave_id, body.station, principal, request.headers.get("x-correlation-id")
    )
    return s.InvitationsSent(wave_id=wave_id, station=body.station, counts=counts)


# ---- audited de-anonymisation (DOMAIN §6) -------------------------------------------------


@router.post(
    "/survey-waves/{wave_id}/units/{unit_id}/link",
    response_model=s.AnswerLinked,
    responses={403: {}, 404: {}, 409: {}, 422: {}},
)
async def link_answer(
    wave_id: WaveId,
    unit_id: UnitId,
    body: s.LinkAnswer,
    request: Request,
    principal: CurrentPrincipal,
) -> JSONResponse:
    """Who gave this unit's answers: only where the bureau's policy allows it, and every
    request, allowed or refused, is a `SurveyAnswerLinked` fact on the wave's stream."""
    vault = vault_of(request)
    handlers: CallbackCommands = request.app.state.commands
    shown: dict[str, Any] = {}

    async def decide(wave: SurveyWave, tx: PostgresTransaction, now: datetime) -> list[Fact]:
        unit = wave.unit(unit_id)
        # Read afresh, not from the cache: a bureau that just turned linking off means it.
        policy = await handlers.policies.read(tx.connection, wave.bureau)
        allowed = bool(policy.survey_answer_linking)
        try:
            reason = await vault.encrypt(tx.connection, unit.subject_id, body.reason)
        except SubjectErased:
            reason = None
        facts = wave.link_answer(
            unit_id,
            allowed=allowed,
            actor=re.sub(r"[^A-Za-z0-9_:.-]", "-", principal.subject)[:32],
            role=next(r for r in LINK_ROLES if principal.has_role(r)),
            reason=reason,
            occurred_at=now,
            now=now,
        )
        if allowed:
            frame_unit = next(u for u in wave.frames[unit.station] if u.unit_id == unit_id)
            revealed = await vault.reveal_fields(tx.connection, frame_unit.person) or {}
            shown.update({k: revealed.get(k) for k in ("name", "phone", "address")})
            shown["answers"] = dict(unit.answers)
        return facts

    code, result = await _execute(
        request, principal, None, wave_id, decide, roles=LINK_ROLES,
        extra={"unit_id": unit_id},
    )  # fmt: skip
    if not shown:
        # The refusal is recorded (committed above); the caller learns nothing.
        raise forbidden(
            "this bureau's policy does not allow linking survey answers to persons;"
            " the request has been recorded"
        )
    out = s.AnswerLinked(
        wave_id=wave_id, unit_id=unit_id, version=result.get("version", 0), result="granted",
        **{k: (None if v == ERASED else v) for k, v in shown.items() if k != "answers"},
        answers=shown["answers"],
    )  # fmt: skip
    return JSONResponse(out.model_dump(), status_code=code, headers={"Cache-Control": "no-store"})
