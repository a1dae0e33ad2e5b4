"""Unit codes (GB/T 2260 prefixes): which level a unit is at, the one above, conflicts."""

from __future__ import annotations

from jingmin_complaints.domain.vocabulary import Level

# The bureau's own organs (局机关) have no station code of their own; events that must name a
# 9-digit station use the bureau code followed by this suffix.
BUREAU_ORGANS = "000"


def station_of(unit: str) -> str:
    """The 9-digit station an event about `unit` carries (a beat belongs to its station)."""
    return unit[:9] if len(unit) >= 9 else unit[:6] + BUREAU_ORGANS


def level_of(unit: str) -> Level:
    if len(unit) >= 9 and not unit[:9].endswith(BUREAU_ORGANS):
        return Level.STATION
    if len(unit) >= 6:
        return Level.BUREAU
    return Level.CITY


def unit_at(level: Level, unit: str) -> str:
    """`unit`'s code at `level`: station 9 digits, bureau 6, city 4."""
    return {Level.STATION: unit[:9], Level.BUREAU: unit[:6], Level.CITY: unit[:4]}[level]


def next_level(level: Level) -> Level | None:
    """Station → bureau → city; the city is the top this platform escalates to."""
    order = [Level.STATION, Level.BUREAU, Level.CITY]
    i = order.index(level)
    return order[i + 1] if i + 1 < len(order) else None


def _own_unit(unit: str) -> str:
    # A complaint about the bureau's organs concerns the whole bureau, not a station "000".
    return unit[:6] if station_of(unit).endswith(BUREAU_ORGANS) and len(unit) <= 9 else unit


def same_unit(subject_unit: str, investigator_unit: str) -> bool:
    """True when the investigator belongs to the subject's unit (回避).

    Inside the subject's unit (a station's beat investigating its station) is a conflict;
    a unit above it (the bureau's 督察 investigating a station) is not, unless the
    investigator's unit is itself a station containing the subject (a beat complained of).
    """
    subject = _own_unit(subject_unit)
    investigator = _own_unit(investigator_unit)
    if investigator.startswith(subject):
        return True
    return subject.startswith(investigator) and len(investigator) >= 9
