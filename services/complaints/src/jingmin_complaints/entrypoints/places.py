"""Public look-ups for the complaint form: divisions by name (GB/T 2260) and a county's
stations from the unit register, so a citizen chooses by name, never by code.

No token (the form is public), nothing personal: names and codes only, cacheable.
"""

from __future__ import annotations

from typing import Annotated

from eventkit import divisions
from eventkit.problems import Problem, not_found
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from jingmin_complaints.adapters.unit_names import stations
from jingmin_complaints.entrypoints.common import commands_of
from jingmin_complaints.entrypoints.ratelimit import LOOKUP, RateLimiter

router = APIRouter(prefix="/v1/public", tags=["public"])

# Divisions change with a GB/T 2260 release (a deploy); stations with the register.
DIVISIONS_CACHE = "public, max-age=86400"
STATIONS_CACHE = "public, max-age=300"
# The level of a parent's children, by the parent code's length.
CHILD_LEVEL = {0: "province", 2: "city", 4: "county"}


class Place(BaseModel):
    code: str = Field(description="Administrative-division or station code.")
    name: str = Field(description="Chinese name.")


class DivisionChildren(BaseModel):
    parent: str = Field(description='The division asked for ("" for the whole country).')
    name: str | None = Field(description="Its name (null for the country).")
    level: str = Field(description="The children's level: province, city or county.")
    children: list[Place]


class CountyStations(BaseModel):
    county: str
    name: str
    stations: list[Place] = Field(description="Stations in service, by code.")


def _limited(request: Request) -> None:
    limiter: RateLimiter = request.app.state.limiter
    client = request.client.host if request.client else "unknown"
    wait = limiter.take("lookup", LOOKUP, client)
    if wait:
        problem = Problem(
            429,
            "Too Many Requests",
            f"retry in {int(wait)} s",
            type_="urn:jingmin:problem:rate-limited",
        )
        problem.headers["Retry-After"] = str(int(wait))
        raise problem


def division_children(parent: str) -> DivisionChildren:
    """The provinces (`""`), a province's cities or a city's counties; 404 for unknown."""
    name = divisions.name(parent) if parent else None
    if parent and name is None:
        raise not_found(f"no division {parent} in GB/T 2260")
    children = [Place(code=c, name=n) for c, n in divisions.children(parent)]
    return DivisionChildren(
        parent=parent, name=name, level=CHILD_LEVEL[len(parent)], children=children
    )


@router.get(
    "/divisions",
    response_model=DivisionChildren,
    responses={404: {}, 422: {}, 429: {}},
    summary="List divisions below one (省 → 市 → 县/区), by name",
)
async def list_divisions(
    request: Request,
    response: Response,
    parent: Annotated[
        str,
        Query(
            pattern=r"^([0-9]{2}|[0-9]{4})?$",
            description="Province (2 digits) or city (4 digits); empty or absent: provinces.",
        ),
    ] = "",
) -> DivisionChildren:
    """List the provinces, a province's cities or a city's counties (GB/T 2260 names)."""
    _limited(request)
    response.headers["Cache-Control"] = DIVISIONS_CACHE
    return division_children(parent)


@router.get(
    "/divisions/{county}/stations",
    response_model=CountyStations,
    responses={404: {}, 422: {}, 429: {}},
    summary="List a county's police stations in service, by name",
)
async def county_stations(
    request: Request,
    response: Response,
    county: Annotated[
        str, Path(pattern=r"^[0-9]{6}$", description="County code (the bureau), 6 digits.")
    ],
) -> CountyStations:
    """List the stations (派出所) a citizen may name in a county: the unit register's stations
    in service, and those the bureau's complaint policy names."""
    _limited(request)
    name = divisions.name(county)
    if name is None:
        raise not_found(f"no county {county} in GB/T 2260")
    async with request.app.state.pool.acquire() as conn:
        policy = await commands_of(request).policies.get(conn, county)
        found = await stations(conn, county, policy.units)
    response.headers["Cache-Control"] = STATIONS_CACHE
    return CountyStations(
        county=county,
        name=name,
        stations=[Place(code=c, name=n) for c, n in found.items()],
    )
