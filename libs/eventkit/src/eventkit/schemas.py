"""Request and response types every service API shares; unknown fields are refused."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from types import UnionType
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin

import asyncpg
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    StringConstraints,
    model_validator,
)

from eventkit.personal import Vault
from eventkit.store import RecordedEvent

BureauCode = Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
StationCode = Annotated[str, StringConstraints(pattern=r"^\d{9}$")]
SubjectId = Annotated[str, StringConstraints(pattern=r"^sub_[A-Za-z0-9]{8,64}$")]
Code = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_.:-]+$")]
# A reference or target outside Jingmin (a CAD id, an agency code): never free text, since
# such fields are published on topics and free text may hold personal data.
Reference = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/-]+$")
]
# Control characters (NUL above all: PostgreSQL text cannot hold it) are refused; tabs and
# line breaks are fine in narratives.
_NO_CONTROL = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
Text = Annotated[
    str,
    StringConstraints(min_length=1, max_length=4000, strip_whitespace=True, pattern=_NO_CONTROL),
]
ShortText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, strip_whitespace=True, pattern=_NO_CONTROL),
]

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def plausible(t: datetime) -> datetime:
    # Years like 1 or 9999 overflow once shifted to UTC and mean nothing here.
    try:
        if EARLIEST <= t <= LATEST:
            return t
    except OverflowError:
        pass
    raise ValueError(f"time must lie between {EARLIEST.year} and {LATEST.year}")


Time = Annotated[AwareDatetime, AfterValidator(plausible)]


def _plain_types(annotation: Any) -> set[Any]:
    """The types an annotation admits at its top level (through Optional, unions, Annotated)."""
    args = get_args(annotation)
    if get_origin(annotation) in (Union, UnionType, Annotated):
        return {t for a in args for t in _plain_types(a)}
    return {annotation}


class Strict(BaseModel):
    """A request body: unknown fields refused, and no true or false where a number goes.

    pydantic's lax mode reads JSON `true` as the integer 1 (`"sweep_grace_seconds": true`
    would store 1 s); strict mode would also refuse ISO strings for times, so only booleans
    are refused, for the fields whose type is a number and not also a bool.
    """

    model_config = ConfigDict(extra="forbid")
    _numbers: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        numbers = set()
        for name, field in cls.model_fields.items():
            types = _plain_types(field.annotation)
            if types & {int, float} and bool not in types:
                numbers |= {name, field.alias or name}
        cls._numbers = frozenset(numbers)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in cls._numbers:
                if isinstance(data.get(name), bool):
                    raise ValueError(f"{name} must be a number, not true or false")
        return data


OfficerId = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 -]{3,20}$")]
IdNumber = Annotated[str, StringConstraints(pattern=r"^[0-9]{17}[0-9Xx]$")]


class PersonIn(Strict):
    """A member of the public; every field is stored encrypted under their own key."""

    name: ShortText | None = None
    phone: Phone | None = None
    id_number: IdNumber | None = None
    address: ShortText | None = None


class HistoryEvent(BaseModel):
    """One stored event as an authorised reader sees it (personal fields decrypted)."""

    version: int
    type: str
    occurred_at: datetime
    recorded_at: datetime
    actor: str | None = None
    data: dict[str, Any]


async def revealed_history(
    vault: Vault, conn: asyncpg.Connection, history: Sequence[RecordedEvent]
) -> list[HistoryEvent]:
    """A stream's events for an authorised reader, personal fields decrypted (or erased)."""
    return [
        HistoryEvent(
            version=e.version,
            type=e.type,
            occurred_at=e.occurred_at,
            recorded_at=e.recorded_at,
            actor=e.metadata.get("actor"),
            data=await vault.reveal_all(conn, dict(e.data)),
        )
        for e in history
    ]
