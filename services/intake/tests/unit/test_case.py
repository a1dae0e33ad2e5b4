"""The Case aggregate: given events, when a command, then events. No I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jingmin_intake.domain.case import (
    ARRIVED,
    BREACHED,
    CLOSED,
    DISPATCHED,
    ESCALATED,
    FIRST_CONTACT,
    RECEIVED,
    REJECTED,
    REOPENED,
    RESOLVED,
    SERVICE_VISIT,
    TRANSFERRED,
    Case,
    Fact,
)
from jingmin_intake.domain.errors import IllegalTransition, InvalidCommand
from jingmin_intake.domain.policy import DeadlinePolicy
from jingmin_intake.domain.vocabulary import Status

CASE_ID = "0" * 31 + "1"
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
POLICY = DeadlinePolicy()
GRACE = timedelta(seconds=POLICY.sweep_grace_seconds)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def given(*facts: Fact) -> Case:
    """The case as its stored history makes it (facts travel through JSON, as when stored)."""
    return Case.from_history(
        CASE_ID, ((f.type, json.loads(json.dumps(f.data)), f.occurred_at) for f in facts)
    )


def received(
    kind: str = "alarm",
    channel: str = "call_110",
    priority: str | None = None,
    area_type: str = "urban",
    t: datetime = T0,
    deadlines: dict[str, datetime] | None = None,
) -> Fact:
    """CaseReceived as the API records it, with the default policy's deadlines."""
    priority = priority or ("urgent" if kind == "alarm" else "general")
    if deadlines is None:
        deadlines = POLICY.on_receipt(kind, channel, priority, t)
    data = {
        "bureau": "330602",
        "station": "330602001",
        "channel": channel,
        "kind": kind,
        "priority": priority,
        "area_type": area_type,
        "subject_id": "sub_abcdefghijkl",
    }
    (fact,) = Case(CASE_ID).receive(data, deadlines, t, now=t)
    return fact


def types(facts: list[Fact]) -> list[str]:
    return [f.type for f in facts]


def dispatch(case: Case, t: datetime, now: datetime | None = None) -> list[Fact]:
    return case.dispatch(
        {"unit": "330602001", "officer_ids": ["p1001"]},
        POLICY.on_dispatch(case.area_type, t),
        t,
        now or t,
    )


class History:
    """A running stream: each step decides on the case rebuilt from everything so far."""

    def __init__(self, *facts: Fact) -> None:
        self.facts = list(facts)

    @property
    def case(self) -> Case:
        return given(*self.facts)

    def then(self, facts: list[Fact]) -> list[Fact]:
        self.facts.extend(facts)
        return facts


# ---- lifecycle -----------------------------------------------------------------------------


def test_full_alarm_lifecycle_with_reopen() -> None:
    h = History(received())
    assert h.case.status == Status.RECEIVED
    assert set(h.case.open_deadlines()) == {"dispatch"}

    facts = h.then(h.case.assign_first_contact("p1001", "330602001", True, {}, at(10), at(10)))
    assert types(facts) == [FIRST_CONTACT]
    assert facts[0].data["in_remit"] is True and facts[0].data["officer_id"] == "p1001"
    assert h.case.status == Status.ASSIGNED

    facts = h.then(dispatch(h.case, at(40)))
    assert types(facts) == [DISPATCHED]
    assert facts[0].data["deadlines"] == {"arrival": at(40 + 300).isoformat()}
    case = h.case
    assert case.status == Status.DISPATCHED
    assert case.deadlines["dispatch"].met_at == at(40)
    assert not case.deadlines["dispatch"].breached

    assert types(h.then(h.case.arrive({"officer_id": "p1001"}, at(200), at(200)))) == [ARRIVED]
    assert h.case.status == Status.ON_SCENE
    assert h.case.deadlines["arrival"].met_at == at(200)

    assert types(h.then(h.case.resolve({"reply": "x"}, at(900), at(900)))) == [RESOLVED]
    assert h.case.status == Status.RESOLVED
    assert types(h.then(h.case.close(at(1000), at(1000)))) == [CLOSED]
    assert h.case.status == Status.CLOSED

    facts = h.then(h.case.reopen({"reason": "callback_unsatisfied"}, {}, at(5000), at(5000)))
    assert types(facts) == [REOPENED]
    assert h.case.status == Status.REOPENED
    assert types(h.then(h.case.resolve({"reply": "y"}, at(6000), at(6000)))) == [RESOLVED]
    assert types(h.then(h.case.close(at(6100), at(6100)))) == [CLOSED]

    case = h.case
    assert case.status == Status.CLOSED
    assert case.version == 9
    assert case.received_at == T0 and case.dispatched_at == at(40) and case.arrived_at == at(200)
    assert BREACHED not in types(h.facts)


def test_received_fact_carries_the_case_and_its_deadlines() -> None:
    fact = received()
    assert fact.type == RECEIVED and fact.occurred_at == T0
    assert fact.data["case_id"] == CASE_ID
    assert fact.data["deadlines"] == {"dispatch": at(60).isoformat()}
    with pytest.raises(IllegalTransition):
        given(fact).receive({}, {}, at(1), at(1))


def test_commands_on_a_case_that_does_not_exist_are_illegal() -> None:
    with pytest.raises(IllegalTransition):
        Case(CASE_ID).resolve({}, T0, T0)
    with pytest.raises(IllegalTransition):
        Case(CASE_ID).arrive({}, T0, T0)
    assert Case(CASE_ID).sweep(at(10_000), GRACE) == []


# ---- service cases (一次办结) ------------------------------------------------------------------


def test_service_case_done_in_one_visit() -> None:
    h = History(received(kind="service", channel="window"))
    facts = h.then(h.case.record_service_visit({"missing_materials": []}, None, at(60), at(60)))
    assert types(facts) == [SERVICE_VISIT] and facts[0].data["visit_number"] == 1
    assert h.case.status == Status.IN_SERVICE
    (resolved,) = h.then(h.case.resolve({}, at(600), at(600)))
    assert resolved.data["one_visit"] is True
    assert resolved.data["service_visits"] == 1


def test_service_case_needing_a_second_visit_is_not_one_visit() -> None:
    h = History(received(kind="service", channel="window"))
    h.then(
        h.case.record_service_visit({"missing_materials": ["户口簿"]}, at(86_400), at(60), at(60))
    )
    assert h.case.deadlines["resolution"].due_at == at(86_400)
    (second,) = h.then(h.case.record_service_visit({}, None, at(3600), at(3600)))
    assert second.data["visit_number"] == 2
    (resolved,) = h.then(h.case.resolve({}, at(4000), at(4000)))
    assert resolved.data == {"one_visit": False, "service_visits": 2}


def test_service_case_resolved_without_a_recorded_visit_claims_no_visit_count() -> None:
    # Claiming one visit here would make a station that records nothing score best.
    case = given(received(kind="service", channel="window"))
    (resolved,) = case.resolve({}, at(60), at(60))
    assert "one_visit" not in resolved.data and "service_visits" not in resolved.data


def test_non_service_cases_have_no_visits_and_no_one_visit_flag() -> None:
    case = given(received(kind="consultation", channel="online"))
    with pytest.raises(InvalidCommand):
        case.record_service_visit({}, None, at(60), at(60))
    (resolved,) = case.resolve({"reply": "r"}, at(60), at(60))
    assert "one_visit" not in resolved.data


def test_committed_due_time_must_be_after_the_visit() -> None:
    case = given(received(kind="service", channel="window"))
    with pytest.raises(InvalidCommand):
        case.record_service_visit({}, at(60), at(60), at(60))


# ---- transfer, escalate, reject -------------------------------------------------------------


def test_transfer_records_whether_the_person_was_told_where_to_go() -> None:
    h = History(received(kind="help", channel="hotline"))
    data = {"target_type": "external", "target": "12345", "person_informed": True}
    (fact,) = h.then(h.case.transfer(data, at(30), at(30)))
    assert fact.type == TRANSFERRED
    assert fact.data["person_informed"] is True and fact.data["target"] == "12345"
    case = h.case
    assert case.status == Status.TRANSFERRED
    assert case.open_deadlines() == {}
    assert types(case.close(at(40), at(40))) == [CLOSED]


def test_escalate_to_local_government() -> None:
    h = History(received(kind="petition", channel="visit"))
    (fact,) = h.then(h.case.escalate({"target": "local_government"}, at(60), at(60)))
    assert fact.type == ESCALATED
    assert h.case.status == Status.ESCALATED


@pytest.mark.parametrize(
    ("reason", "has_explanation"), [("false_report", False), ("other", True), ("other", False)]
)
def test_an_alarm_is_never_rejected_without_a_specific_reason_and_explanation(
    reason: str, has_explanation: bool
) -> None:
    case = given(received(kind="alarm"))
    with pytest.raises(InvalidCommand):
        case.reject(reason, {}, has_explanation, at(30), at(30))


def test_an_alarm_rejected_with_a_specific_reason_and_explanation() -> None:
    h = History(received(kind="alarm"))
    (fact,) = h.then(h.case.reject("prank", {"explanation": "e"}, True, at(30), at(30)))
    assert fact.type == REJECTED and fact.data["reason"] == "prank"
    assert h.case.status == Status.REJECTED


def test_a_consultation_may_be_rejected_for_another_reason_without_explanation() -> None:
    case = given(received(kind="consultation", channel="online"))
    assert types(case.reject("other", {}, False, at(30), at(30))) == [REJECTED]


# ---- illegal transitions --------------------------------------------------------------------


def test_arrive_before_dispatch_is_illegal() -> None:
    with pytest.raises(IllegalTransition):
        given(received()).arrive({}, at(30), at(30))


def test_resolve_a_closed_case_is_illegal() -> None:
    h = History(received())
    h.then(h.case.resolve({}, at(30), at(30)))
    h.then(h.case.close(at(40), at(40)))
    with pytest.raises(IllegalTransition):
        h.case.resolve({}, at(50), at(50))


def test_close_an_open_case_is_illegal() -> None:
    with pytest.raises(IllegalTransition):
        given(received()).close(at(30), at(30))


def test_dispatch_twice_is_illegal() -> None:
    h = History(received())
    h.then(dispatch(h.case, at(30)))
    with pytest.raises(IllegalTransition):
        dispatch(h.case, at(40))
    h.then(h.case.arrive({}, at(100), at(100)))
    assert h.case.status == Status.ON_SCENE
    with pytest.raises(IllegalTransition):
        dispatch(h.case, at(110))


def test_first_contact_is_assigned_once() -> None:
    h = History(received(kind="consultation", channel="online"))
    h.then(h.case.assign_first_contact("p1", "330602001", True, {}, at(30), at(30)))
    with pytest.raises(IllegalTransition):
        h.case.assign_first_contact("p2", "330602001", True, {}, at(40), at(40))


def test_reopen_an_open_case_is_illegal() -> None:
    with pytest.raises(IllegalTransition):
        given(received()).reopen({"reason": "x"}, {}, at(30), at(30))


# ---- time ---------------------------------------------------------------------------------


def test_occurred_at_more_than_five_minutes_ahead_is_refused() -> None:
    case = given(received())
    now = at(100)
    with pytest.raises(InvalidCommand):
        dispatch(case, now + timedelta(minutes=5, seconds=1), now)
    with pytest.raises(InvalidCommand):
        Case(CASE_ID).receive({}, {}, now + timedelta(minutes=10), now)
    # A few minutes of clock skew between a radio terminal and the server is fine.
    assert types(dispatch(case, now + timedelta(minutes=5), now))[-1] == DISPATCHED


def test_occurred_at_before_the_previous_event_is_refused() -> None:
    h = History(received())
    h.then(dispatch(h.case, at(30)))
    with pytest.raises(InvalidCommand):
        h.case.arrive({}, at(29), at(100))
    assert types(h.case.arrive({}, at(30), at(100))) == [ARRIVED]


def test_occurred_at_without_time_zone_is_refused() -> None:
    with pytest.raises(InvalidCommand):
        given(received()).resolve({}, datetime(2024, 5, 1, 8, 1), at(60))


# ---- deadlines ----------------------------------------------------------------------------


def test_late_dispatch_records_the_breach_first_at_the_due_time() -> None:
    h = History(received())
    facts = h.then(dispatch(h.case, at(95)))
    assert types(facts) == [BREACHED, DISPATCHED]
    breach = facts[0]
    assert breach.data == {"deadline": "dispatch", "due_at": at(60).isoformat()}
    assert breach.occurred_at == at(60)
    state = h.case.deadlines["dispatch"]
    assert state.breached and state.met_at == at(95)
    # The late dispatch still starts the arrival promise from the real dispatch time.
    assert h.case.deadlines["arrival"].due_at == at(95 + 300)


def test_dispatch_exactly_on_the_due_time_is_not_a_breach() -> None:
    assert types(dispatch(given(received()), at(60))) == [DISPATCHED]


def test_late_outcome_breaches_every_promise_already_due() -> None:
    h = History(received(kind="help", channel="call_110", priority="urgent"))
    assert set(h.case.open_deadlines()) == {"dispatch", "resolution"}
    facts = h.then(h.case.resolve({}, at(3 * 3600), at(3 * 3600)))
    assert types(facts) == [BREACHED, BREACHED, RESOLVED]
    assert [f.data["deadline"] for f in facts[:2]] == ["dispatch", "resolution"]


def test_an_outcome_cancels_the_promises_still_open() -> None:
    h = History(received())
    # Resolved over the phone before anyone was sent.
    h.then(h.case.resolve({"reply": "r"}, at(20), at(20)))
    case = h.case
    assert case.open_deadlines() == {}
    assert case.deadlines["dispatch"].cancelled
    assert case.sweep(at(10_000), GRACE) == []


def test_an_outcome_cancels_the_arrival_promise() -> None:
    h = History(received())
    h.then(dispatch(h.case, at(30)))
    h.then(
        h.case.transfer(
            {"target_type": "internal", "target": "330602002", "person_informed": True},
            at(60),
            at(60),
        )
    )
    assert h.case.deadlines["arrival"].cancelled
    assert h.case.sweep(at(10_000), GRACE) == []


def test_sweep_breaches_once_after_the_grace_and_never_again() -> None:
    h = History(received())
    assert h.case.sweep(at(60), GRACE) == []
    assert h.case.sweep(at(60) + GRACE, GRACE) == []
    facts = h.then(h.case.sweep(at(60) + GRACE + timedelta(seconds=1), GRACE))
    assert types(facts) == [BREACHED]
    assert facts[0].occurred_at == at(60)
    assert facts[0].data == {"deadline": "dispatch", "due_at": at(60).isoformat()}
    # Restart, re-run, a day later: the history remembers the breach.
    assert h.case.sweep(at(86_400), GRACE) == []
    # A breach is a system fact: it does not move the case's own timeline.
    assert h.case.last_occurred_at == T0
    # The eventual dispatch meets the promise late, but does not breach it a second time.
    assert types(dispatch(h.case, at(900))) == [DISPATCHED]


def test_sweep_breaches_several_promises_in_due_order() -> None:
    h = History(received(kind="consultation", channel="online", priority="urgent"))
    assert set(h.case.open_deadlines()) == {"first_contact", "resolution"}
    facts = h.case.sweep(at(3 * 3600), GRACE)
    assert [f.data["deadline"] for f in facts] == ["first_contact", "resolution"]


def test_first_contact_meets_the_online_acceptance_promise() -> None:
    h = History(received(kind="opinion", channel="online"))
    h.then(h.case.assign_first_contact("p1", "330602001", False, {}, at(600), at(600)))
    assert set(h.case.open_deadlines()) == {"resolution"}
    assert h.case.deadlines["first_contact"].met_at == at(600)


def test_reopen_starts_a_fresh_resolution_promise() -> None:
    h = History(received(kind="consultation", channel="online"))
    h.then(h.case.resolve({}, at(60), at(60)))
    due = {"resolution": at(3600 + 7 * 86_400)}
    h.then(h.case.reopen({"reason": "r"}, due, at(3600), at(3600)))
    state = h.case.deadlines["resolution"]
    assert state.open and not state.breached and state.due_at == due["resolution"]


# ---- policy -------------------------------------------------------------------------------


def test_default_policy_matches_domain_section_5() -> None:
    p = DeadlinePolicy()
    assert p.dispatch_seconds == 60
    assert p.arrival_seconds == {"urban": 300, "suburban": 600, "rural": 1200}
    assert p.first_contact_seconds["online"] == 2 * 3600
    assert p.reply_seconds == {
        "urgent": 2 * 3600,
        "utilities": 24 * 3600,
        "general": 7 * 86_400,
        "complex": 15 * 86_400,
    }
    assert p.petition_acceptance_seconds == 15 * 86_400
    assert p.petition_conclusion_seconds == 60 * 86_400


def test_default_policy_due_times() -> None:
    p = DeadlinePolicy()
    assert p.on_receipt("alarm", "call_110", "urgent", T0) == {"dispatch": at(60)}
    assert p.on_receipt("consultation", "online", "utilities", T0) == {
        "first_contact": at(2 * 3600),
        "resolution": at(24 * 3600),
    }
    assert p.on_receipt("petition", "letter", "general", T0) == {"first_contact": at(15 * 86_400)}
    assert p.on_acceptance("petition", T0) == {"resolution": at(60 * 86_400)}
    assert p.on_acceptance("alarm", T0) == {}
    assert p.on_dispatch("suburban", T0) == {"arrival": at(600)}
    assert p.on_dispatch("rural", T0) == {"arrival": at(1200)}


def test_policy_survives_a_json_round_trip() -> None:
    p = DeadlinePolicy(dispatch_seconds=90, arrival_seconds={"urban": 240})
    raw = json.loads(json.dumps(p.to_dict()))
    assert DeadlinePolicy.from_dict(raw) == p


def test_policy_refuses_unknown_fields() -> None:
    with pytest.raises(ValueError, match="dispatch_secs"):
        DeadlinePolicy.from_dict({"dispatch_secs": 60})


@pytest.mark.parametrize(
    "raw",
    [
        {"dispatch_seconds": 0},
        {"dispatch_seconds": -60},
        {"dispatch_seconds": 1.5},
        {"petition_acceptance_seconds": 0},
        {"arrival_seconds": {"urban": 0}},
        {"reply_seconds": {"urgent": -1}},
    ],
)
def test_policy_refuses_non_positive_durations(raw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DeadlinePolicy.from_dict(raw)


def test_an_open_promise_is_never_pushed_back() -> None:
    # A petition received with a committed reply time keeps it when acceptance would set
    # the later 60-day conclusion deadline: the stricter promise stands and can be breached.
    case = Case("c" * 32)
    t0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
    committed = t0 + timedelta(hours=2)
    for fact in case.receive(
        {
            "bureau": "330602",
            "station": "330602001",
            "kind": "petition",
            "channel": "visit",
            "priority": "general",
            "area_type": "urban",
        },
        {"resolution": committed},
        t0,
        t0,
    ):
        case.apply(fact)
    later = t0 + timedelta(hours=1)
    (fact,) = case.assign_first_contact(
        "A1", "330602001", True, {"resolution": t0 + timedelta(days=60)}, later, later
    )
    assert "resolution" not in fact.data["deadlines"]
    case.apply(fact)
    assert case.deadlines["resolution"].due_at == committed
    breaches = case.sweep(t0 + timedelta(hours=3), timedelta(0))
    assert [b.data["deadline"] for b in breaches] == ["resolution"]
