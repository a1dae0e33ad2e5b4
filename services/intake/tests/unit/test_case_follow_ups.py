"""Enforcement decisions and classifications on a case: the facts callbacks follow. No I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from jingmin_intake.domain.case import (
    CLASSIFIED,
    CLOSED,
    ENFORCEMENT_DECIDED,
    RECEIVED,
    RESOLVED,
    Case,
    Fact,
)
from jingmin_intake.domain.errors import IllegalTransition, InvalidCommand

CASE_ID = "0" * 31 + "2"
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def case_of(*facts: Fact) -> Case:
    return Case.from_history(
        CASE_ID, ((f.type, json.loads(json.dumps(f.data)), f.occurred_at) for f in facts)
    )


def receipt(kind: str = "alarm") -> Fact:
    data = {
        "bureau": "330602",
        "station": "330602001",
        "channel": "call_110",
        "kind": kind,
        "priority": "urgent",
        "area_type": "urban",
        "subject_id": "sub_abcdefghijkl",
    }
    (fact,) = Case(CASE_ID).receive(data, {}, T0, T0)
    return fact


def closed_alarm() -> list[Fact]:
    facts = [receipt()]
    facts += case_of(*facts).resolve({}, at(1), at(1))
    facts += case_of(*facts).close(at(2), at(2))
    assert [f.type for f in facts] == [RECEIVED, RESOLVED, CLOSED]
    return facts


def test_an_enforcement_decision_follows_even_a_closed_case_once() -> None:
    history = closed_alarm()
    [fact] = case_of(*history).decide_enforcement("administrative_penalty", {}, at(48), at(48))
    assert fact.type == ENFORCEMENT_DECIDED
    assert fact.data == {"decision": "administrative_penalty"}
    assert fact.occurred_at == at(48)
    case = case_of(*history, fact)
    assert case.enforcement_decision == "administrative_penalty"
    assert case.status.value == "closed"  # the decision does not move the lifecycle
    with pytest.raises(IllegalTransition):
        case.decide_enforcement("no_penalty", {}, at(49), at(49))


def test_an_unknown_decision_or_case_is_refused() -> None:
    with pytest.raises(ValueError):
        case_of(receipt()).decide_enforcement("public_flogging", {}, at(1), at(1))
    with pytest.raises(IllegalTransition):
        Case(CASE_ID).decide_enforcement("no_penalty", {}, at(1), at(1))


def test_a_complaint_case_takes_neither_fact() -> None:
    complaint = case_of(receipt(kind="complaint"))
    with pytest.raises(InvalidCommand):
        complaint.decide_enforcement("no_penalty", {}, at(1), at(1))
    with pytest.raises(InvalidCommand):
        complaint.classify(True, False, None, {}, at(1), at(1))


def test_a_classification_is_recorded_and_restating_it_records_nothing() -> None:
    history = [receipt()]
    [fact] = case_of(*history).classify(True, True, "theft.burglary", {}, at(1), at(1))
    assert fact.type == CLASSIFIED
    assert fact.data == {"crime_victim": True, "preventable": True, "category": "theft.burglary"}
    history.append(fact)
    assert case_of(*history).classify(True, True, "theft.burglary", {}, at(2), at(2)) == []
    [changed] = case_of(*history).classify(True, False, "theft.burglary", {}, at(2), at(2))
    assert changed.data["preventable"] is False
    assert case_of(*history, changed).classification == (True, False, "theft.burglary")


def test_a_follow_up_cannot_predate_the_cases_last_event() -> None:
    with pytest.raises(InvalidCommand):
        case_of(*closed_alarm()).classify(False, True, None, {}, at(1.5), at(3))
