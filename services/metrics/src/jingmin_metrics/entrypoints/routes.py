"""JSON drill-down API: figures by scope and period, breakdowns, officers, issues, equity."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from eventkit import problems
from eventkit.auth import CurrentPrincipal, Principal, authorize
from fastapi import APIRouter, Path, Query, Request

from jingmin_metrics.adapters.unit_names import Names
from jingmin_metrics.domain.clock import OFFSET
from jingmin_metrics.entrypoints.exporter import Figures
from jingmin_metrics.figures import compute, definitions

router = APIRouter(prefix="/v1", tags=["figures"])

READ_ROLES = ("commander", "supervisor", "officer", "admin")
# Officer-level figures are for authorised drill-down only (DOMAIN.md §4).
OFFICER_ROLES = ("commander", "supervisor")
MAX_DAYS = 400
Dimension = Literal["station", "channel", "kind", "branch", "area_type", "party_category"]
Code = Annotated[str | None, Query(pattern=r"^[0-9]{2,9}$", description="Code prefix in scope.")]
Day = Annotated[date | None, Query(description="First / last bureau day (Beijing), inclusive.")]


def _figures(request: Request) -> Figures:
    figures: Figures = request.app.state.figures
    return figures


def _today() -> date:
    return (datetime.now(UTC) + OFFSET).date()


def _period(start: date | None, end: date | None) -> tuple[str, str]:
    last = end or _today()
    first = start or last - timedelta(days=29)
    if first > last:
        raise problems.Problem(422, "Unprocessable Content", "`from` is after `to`")
    if (last - first).days + 1 > MAX_DAYS:
        raise problems.Problem(
            422, "Unprocessable Content", f"a period may span at most {MAX_DAYS} days"
        )
    return first.isoformat(), last.isoformat()


def _scope(principal: Principal, scope: str | None, roles: tuple[str, ...]) -> str:
    code = scope or principal.scopes[0]
    authorize(principal, code, roles)
    return code


def _envelope(
    request: Request, scope: str, names: Names, first: str, last: str, body: Any
) -> dict[str, Any]:
    view = _figures(request).reader.view
    return {
        "scope": scope,
        "name": names.name(scope),
        "from": first,
        "to": last,
        "events_applied": view.facts(),
        "partitions_reporting": len(view.status),
        "figures": body,
    }


async def _answer(
    request: Request,
    code: str,
    start: date | None,
    end: date | None,
    figures_of: Callable[[compute.Scope], Any],
    named: Callable[[Any, Names], Any] = lambda body, names: body,
) -> dict[str, Any]:
    """The figures `figures_of` computes for one scope and period, in the common envelope,
    with the scope's name and, through `named`, the names of the units in the body."""
    first, last = _period(start, end)
    s = compute.Scope(_figures(request).index(), [code], first, last)
    names = await Names.load(request.app.state.pool)
    return _envelope(request, code, names, first, last, named(figures_of(s), names))


def _station_names(rows: dict[str, dict[str, Any]], names: Names) -> dict[str, dict[str, Any]]:
    """Each station row gets its name (null when the register does not know the code)."""
    return {code: {"name": names.name(code), **row} for code, row in rows.items()}


@router.get("/figures", description=definitions.openapi())
async def figures(
    request: Request,
    principal: CurrentPrincipal,
    scope: Code = None,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    """Every figure of a scope (province, city, bureau or station) for a period."""
    code = _scope(principal, scope, READ_ROLES)
    return await _answer(request, code, start, end, compute.summary)


@router.get("/figures/breakdown")
async def breakdown(
    request: Request,
    principal: CurrentPrincipal,
    dimension: Dimension,
    scope: Code = None,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    """Volume, satisfaction and on-time rate per station, channel, kind, branch, area type."""
    code = _scope(principal, scope, READ_ROLES)
    named = _station_names if dimension == "station" else (lambda body, names: body)
    return await _answer(
        request, code, start, end, lambda s: compute.breakdown(s, dimension), named
    )


@router.get("/stations/{station}/officers")
async def station_officers(
    station: Annotated[str, Path(pattern=r"^[0-9]{9}$")],
    request: Request,
    principal: CurrentPrincipal,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    """Officer-level figures of one station (commanders and supervisors only)."""
    authorize(principal, station, OFFICER_ROLES)
    return await _answer(request, station, start, end, compute.officers)


@router.get("/top-issues")
async def top_issues(
    request: Request,
    principal: CurrentPrincipal,
    scope: Code = None,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> dict[str, Any]:
    """Case categories ranked by volume and by dissatisfaction."""
    code = _scope(principal, scope, READ_ROLES)
    return await _answer(request, code, start, end, lambda s: compute.top_issues(s, limit))


@router.get("/equity")
async def equity(
    request: Request,
    principal: CurrentPrincipal,
    scope: Code = None,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    """Satisfaction and complaint rate of local, non-local and vulnerable parties (the gap).

    Complaints per 1,000 cases count the same complaints as `complaints.per_1000_cases`
    (however filed: intake, the complaints API, a survey), by the party category each
    carries; `complaints_party_unknown` holds those without one."""
    code = _scope(principal, scope, READ_ROLES)
    return await _answer(request, code, start, end, compute.equity)
