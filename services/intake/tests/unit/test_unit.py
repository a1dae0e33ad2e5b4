"""The Unit aggregate: given events, when a command, then events. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from jingmin_intake.domain.errors import IllegalTransition, InvalidCommand
from jingmin_intake.domain.unit import (
    REGISTERED,
    RENAMED,
    RETIRED,
    Unit,
    kind_of,
    parent_of,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
STATION = "330602001"
BEAT = "33060200101"


def registered(code: str = STATION, name: str = "城南派出所") -> Unit:
    unit = Unit(code)
    for fact in unit.register(name, bureau_known=True, parent_active=True, at=T0, now=T0):
        unit.apply(fact)
    return unit


def test_kind_and_parent_follow_from_the_code() -> None:
    assert (kind_of(STATION), parent_of(STATION)) == ("station", "330602")
    assert (kind_of(BEAT), parent_of(BEAT)) == ("beat", STATION)


@pytest.mark.parametrize("code", ["330602", "3306020011", "33060200101x", "３３０６０２００１"])
def test_anything_but_9_or_11_ascii_digits_is_not_a_unit(code: str) -> None:
    with pytest.raises(InvalidCommand):
        Unit(code).register("所", bureau_known=True, parent_active=True, at=T0, now=T0)


def test_register_records_code_name_kind_and_parent() -> None:
    [fact] = Unit(BEAT).register(
        " 城南社区警务室 ", bureau_known=True, parent_active=True, at=T0, now=T0
    )
    assert fact.type == REGISTERED
    assert fact.data == {"code": BEAT, "name": "城南社区警务室", "kind": "beat", "parent": STATION}


def test_a_station_under_a_county_gb2260_lacks_is_refused() -> None:
    with pytest.raises(InvalidCommand, match="GB/T 2260"):
        Unit("339999001").register("所", bureau_known=False, parent_active=True, at=T0, now=T0)


def test_a_beat_needs_an_active_station() -> None:
    with pytest.raises(InvalidCommand, match=STATION):
        Unit(BEAT).register("室", bureau_known=True, parent_active=False, at=T0, now=T0)


def test_a_blank_or_overlong_name_is_refused() -> None:
    for name in ("  ", "所" * 65):
        with pytest.raises(InvalidCommand):
            Unit(STATION).register(name, bureau_known=True, parent_active=True, at=T0, now=T0)


def test_rename_keeps_the_old_name_in_the_fact() -> None:
    unit = registered()
    [fact] = unit.rename("城南派出所（新）", T0 + timedelta(days=1), T0 + timedelta(days=1))
    assert (fact.type, fact.data) == (
        RENAMED,
        {"old_name": "城南派出所", "new_name": "城南派出所（新）"},
    )
    unit.apply(fact)
    assert (unit.name, unit.version) == ("城南派出所（新）", 2)


def test_renaming_to_the_same_name_records_nothing() -> None:
    assert registered().rename(" 城南派出所", T0, T0) == []


def test_a_rename_may_not_go_back_before_the_previous_event() -> None:
    with pytest.raises(InvalidCommand, match="before"):
        registered().rename("新名", T0 - timedelta(hours=1), T0)


def test_a_station_with_active_beats_cannot_retire() -> None:
    with pytest.raises(IllegalTransition, match="beat"):
        registered().retire(2, T0, T0)


def test_a_retired_unit_is_neither_renamed_nor_retired_again() -> None:
    unit = registered()
    [fact] = unit.retire(0, T0, T0)
    assert fact.type == RETIRED
    unit.apply(fact)
    assert unit.status == "retired"
    with pytest.raises(IllegalTransition):
        unit.rename("新名", T0, T0)
    with pytest.raises(IllegalTransition):
        unit.retire(0, T0, T0)


def test_history_rebuilds_the_current_name() -> None:
    history = [
        (REGISTERED, {"code": STATION, "name": "甲", "kind": "station", "parent": "330602"}, T0),
        (RENAMED, {"old_name": "甲", "new_name": "乙"}, T0),
        (RENAMED, {"old_name": "乙", "new_name": "丙"}, T0),
    ]
    unit = Unit.from_history(STATION, history)
    assert (unit.name, unit.status, unit.version, unit.bureau) == ("丙", "active", 3, "330602")
