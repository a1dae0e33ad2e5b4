"""Unit register API under /v1/units: bureau admins edit it, anyone in scope reads it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from eventkit import divisions
from eventkit.app import vault_of
from eventkit.auth import CurrentPrincipal, Principal, authorize
from eventkit.commands import Handlers, IdempotencyKey, answer, command_request, command_route
from eventkit.problems import not_found
from eventkit.schemas import HistoryEvent, revealed_history
from eventkit.store import load_on
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from jingmin_intake.application import units
from jingmin_intake.entrypoints import unit_schemas as s

router = APIRouter(prefix="/v1", tags=["units"])
Code = Annotated[str, Path(pattern=s.UNIT_CODE, description="Station or beat code")]
# Admin-only writes can be refused for the role or the scope, besides what every command
# route documents (404, 409, 422).
REFUSED: dict[int | str, dict[str, Any]] = {403: {}}


def _handlers(request: Request) -> Handlers:
    handlers: Handlers = request.app.state.commands
    return handlers


def _location(code: str) -> str:
    return f"/v1/units/{code}"


@router.post(
    "/units",
    status_code=201,
    response_model=s.UnitAccepted,
    responses={**REFUSED, 409: {}, 422: {}},
)
async def register_unit(
    body: s.UnitCreate, request: Request, principal: CurrentPrincipal, key: IdempotencyKey = None
) -> JSONResponse:
    """Register a station or beat with its name (bureau admins, in their own bureau)."""
    command = await command_request(request, principal, key)
    status, answered = await units.register(
        _handlers(request), command, body.code, body.name, body.occurred_at
    )
    return answer(status, answered, _location(body.code))


def _unit_command(path: str, body_type: type[Any]) -> Callable[[Any], Any]:
    """Register `POST /v1/units/{code}/<path>`; the decorated function runs the command."""

    def register(run_it: Any) -> Any:
        async def run(
            code: str, body: Any, request: Request, principal: Principal, key: str | None
        ) -> JSONResponse:
            command = await command_request(request, principal, key)
            status, answered = await run_it(_handlers(request), command, code, body)
            return answer(status, answered)

        command_route(
            router,
            f"/units/{{code}}/{path}",
            "code",
            Code,
            body_type,
            run_it,
            run,
            response_model=s.UnitAccepted,
            responses=REFUSED,
            tags=["units"],
        )
        return run_it

    return register


@_unit_command("rename", s.UnitRename)
async def rename_unit(
    handlers: Handlers, command: Any, code: str, body: s.UnitRename
) -> tuple[int, dict[str, Any]]:
    """Rename a unit: the old name stays in its history; the same name again records nothing."""
    return await units.rename(
        handlers, command, code, body.name, body.occurred_at, body.expected_version
    )


@_unit_command("retire", s.UnitRetire)
async def retire_unit(
    handlers: Handlers, command: Any, code: str, body: s.UnitRetire
) -> tuple[int, dict[str, Any]]:
    """Retire a unit: it keeps its code and history; a station's beats must be retired first."""
    return await units.retire(handlers, command, code, body.occurred_at, body.expected_version)


@router.get("/units", response_model=s.UnitList, responses=REFUSED)
async def list_units(
    request: Request,
    principal: CurrentPrincipal,
    scope: Annotated[str, Query(pattern=r"^[0-9]{2,11}$", description="A code prefix")],
) -> s.UnitList:
    """List the stations and beats under a scope with their current names, and the scope's
    province, city and county names from GB/T 2260."""
    authorize(principal, scope)
    async with request.app.state.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT * FROM units WHERE code LIKE $1 || '%' ORDER BY code", scope
        )
    items = [s.UnitRead(**dict(r), county=divisions.name(r["bureau"])) for r in rows]
    lineage = [s.Division(code=c, name=n) for c, n in divisions.lineage(scope)]
    return s.UnitList(scope=scope, divisions=lineage, items=items)


@router.get("/units/{code}/history", response_model=list[HistoryEvent], responses=REFUSED)
async def unit_history(
    code: Code, request: Request, principal: CurrentPrincipal
) -> list[HistoryEvent]:
    """A unit's events, oldest first: every name it has had, and when."""
    authorize(principal, code)
    async with request.app.state.pool.acquire() as conn:
        history = await load_on(conn, code)
        if not history:
            raise not_found(f"no unit {code}")
        # Unit events hold no personal data; the shared reader keeps one history shape.
        return await revealed_history(vault_of(request), conn, history)
