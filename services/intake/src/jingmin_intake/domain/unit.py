"""The Unit aggregate: a station or beat of a bureau, its name over time, and its retirement.

Codes follow DOMAIN §2: a station is its bureau's 6 digits plus 3, a beat its station's 9
plus 2, so the kind and the parent follow from the code and are never taken on trust.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventkit.domain import Fact, check_time

from jingmin_intake.domain.errors import IllegalTransition, InvalidCommand

# Stored event names: stable, explicit, never derived from class or module names.
REGISTERED = "UnitRegistered"
RENAMED = "UnitRenamed"
RETIRED = "UnitRetired"
EVENT_TYPES = (REGISTERED, RENAMED, RETIRED)

STATION, BEAT = "station", "beat"
ACTIVE, RETIRED_STATUS = "active", "retired"
_KIND_BY_LENGTH = {9: STATION, 11: BEAT}
_DIGITS = re.compile(r"[0-9]+")
MAX_NAME = 64


def kind_of(code: str) -> str:
    """`station` for 9 digits, `beat` for 11; anything else is not a unit code (422)."""
    kind = _KIND_BY_LENGTH.get(len(code)) if _DIGITS.fullmatch(code) else None
    if kind is None:
        raise InvalidCommand(
            f"{code!r} is not a unit code: a station is its bureau's 6 digits plus 3, "
            "a beat its station's 9 digits plus 2"
        )
    return kind


def parent_of(code: str) -> str:
    """The bureau of a station, the station of a beat."""
    return code[:6] if kind_of(code) == STATION else code[:9]


def clean_name(name: str) -> str:
    """A name as stored: trimmed, non-empty, at most 64 characters."""
    trimmed = name.strip()
    if not trimmed or len(trimmed) > MAX_NAME:
        raise InvalidCommand(f"a unit name has 1 to {MAX_NAME} characters")
    return trimmed


@dataclass
class Unit:
    """One station or beat; `status` is None until it is registered."""

    code: str
    version: int = 0
    status: str | None = None
    kind: str | None = None
    parent: str | None = None
    name: str | None = None
    last_occurred_at: datetime | None = None

    @property
    def bureau(self) -> str:
        return self.code[:6]

    @classmethod
    def from_history(
        cls, code: str, history: Iterable[tuple[str, Mapping[str, Any], datetime]]
    ) -> Unit:
        unit = cls(code)
        for type_, data, at in history:
            unit.apply(Fact(type_, dict(data), at))
        return unit

    def apply(self, fact: Fact) -> None:
        self.version += 1
        self.last_occurred_at = fact.occurred_at
        d = fact.data
        if fact.type == REGISTERED:
            self.status, self.kind, self.parent = ACTIVE, d["kind"], d["parent"]
            self.name = d["name"]
        elif fact.type == RENAMED:
            self.name = d["new_name"]
        elif fact.type == RETIRED:
            self.status = RETIRED_STATUS

    # ---- decisions ---------------------------------------------------------------------

    def register(
        self, name: str, *, bureau_known: bool, parent_active: bool, at: datetime, now: datetime
    ) -> list[Fact]:
        """Register a new unit under its bureau (a station) or its station (a beat).

        `bureau_known`: the bureau's code is a county in GB/T 2260 (a typo in the first six
        digits would file the unit under a county nobody can see). `parent_active`: for a
        beat, its station is registered and not retired.
        """
        kind = kind_of(self.code)
        if not bureau_known:
            raise InvalidCommand(f"{self.bureau} is not a county code in GB/T 2260")
        if kind == BEAT and not parent_active:
            raise InvalidCommand(f"station {self.code[:9]} is not registered, or is retired")
        check_time(at, now, None, "unit")
        data = {"code": self.code, "name": clean_name(name), "kind": kind}
        return [Fact(REGISTERED, {**data, "parent": parent_of(self.code)}, at)]

    def rename(self, name: str, at: datetime, now: datetime) -> list[Fact]:
        """Rename; the same name again records nothing (a retry is harmless, no 409)."""
        self._require_active("rename")
        new = clean_name(name)
        if new == self.name:
            return []
        check_time(at, now, self.last_occurred_at, "unit")
        return [Fact(RENAMED, {"old_name": self.name, "new_name": new}, at)]

    def retire(self, active_beats: int, at: datetime, now: datetime) -> list[Fact]:
        """Retire; a station with active beats keeps them (409) until they are retired."""
        self._require_active("retire")
        if active_beats:
            raise IllegalTransition(
                f"station {self.code} still has {active_beats} active beat(s): retire them first"
            )
        check_time(at, now, self.last_occurred_at, "unit")
        return [Fact(RETIRED, {}, at)]

    def _require_active(self, verb: str) -> None:
        if self.status == RETIRED_STATUS:
            raise IllegalTransition(f"unit {self.code} is retired: it cannot {verb}")
