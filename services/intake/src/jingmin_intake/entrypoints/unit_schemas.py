"""Request and response bodies of the unit register API; unknown fields are refused."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from eventkit.schemas import Strict, Time
from pydantic import BaseModel, Field, StringConstraints

# A station is its bureau's 6 digits plus 3; a beat its station's 9 plus 2 (DOMAIN §2).
UNIT_CODE = r"^[0-9]{9}([0-9]{2})?$"
UnitCode = Annotated[str, StringConstraints(pattern=UNIT_CODE)]
UnitName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Version = Annotated[
    int | None, Field(ge=0, description="Optimistic concurrency: refuse (409) if it moved on.")
]
OccurredAt = Annotated[
    Time | None, Field(description="When it took effect in the world; defaults to now.")
]


class UnitCreate(Strict):
    code: UnitCode = Field(description="9 digits for a station, 11 for a beat.")
    name: UnitName = Field(description="The unit's Chinese name, e.g. 城南派出所.")
    occurred_at: OccurredAt = None


class UnitRename(Strict):
    name: UnitName
    occurred_at: OccurredAt = None
    expected_version: Version = None


class UnitRetire(Strict):
    occurred_at: OccurredAt = None
    expected_version: Version = None


class UnitAccepted(BaseModel):
    code: str
    version: int
    status: str | None
    events: list[dict[str, Any]]


class Division(BaseModel):
    """A province, city or county from GB/T 2260."""

    code: str
    name: str


class UnitRead(BaseModel):
    code: str
    kind: str
    parent: str
    name: str
    status: str
    version: int
    county: str | None = Field(description="The bureau's county name (GB/T 2260).")
    registered_at: datetime
    updated_at: datetime


class UnitList(BaseModel):
    scope: str
    divisions: list[Division] = Field(
        description="Province, city and county the scope lies in, from GB/T 2260."
    )
    items: list[UnitRead]
