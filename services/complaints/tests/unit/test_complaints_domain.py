"""Domain rules without I/O: given events, when a command, then events."""

from __future__ import annotations

import base64
import os
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from eventkit.settings import KernelSettings
from jingmin_complaints.application.receipts import new_receipt, normalise, receipt_hash
from jingmin_complaints.domain import complaint as c
from jingmin_complaints.domain import supervision as s
from jingmin_complaints.domain.calendar import WorkCalendar
from jingmin_complaints.domain.complaint import Complaint
from jingmin_complaints.domain.errors import ConflictOfInterest, IllegalTransition, InvalidCommand
from jingmin_complaints.domain.policy import ComplaintPolicy
from jingmin_complaints.domain.supervision import Order
from jingmin_complaints.domain.units import level_of, next_level, same_unit, station_of, unit_at
from jingmin_complaints.domain.vocabulary import Level, Outcome, Verdict
from jingmin_complaints.entrypoints.formtoken import FormTokens
from jingmin_complaints.entrypoints.ratelimit import Limit, RateLimiter

SHANGHAI = ZoneInfo("Asia/Shanghai")
POLICY = ComplaintPolicy()
T0 = datetime(2024, 3, 4, 9, 0, tzinfo=SHANGHAI)  # a Monday
NOW = T0 + timedelta(days=400)


def received(**data: object) -> Complaint:
    complaint = Complaint("c" * 32)
    base = {
        "bureau": "330602",
        "station": "330602001",
        "subject_unit": "330602001",
        "subject_officer": "p2001",
        "channel": "online",
        "category": "attitude",
        "level": "station",
        "subject_id": "sub_abcdefgh",
        "anonymous": False,
        **data,
    }
    for fact in complaint.receive(base, POLICY, T0, NOW):
        complaint.apply(fact)
    return complaint


def run(item: Complaint | Order, facts: list[c.Fact]) -> list[str]:
    for fact in facts:
        item.apply(fact)
    return [f.type for f in facts]


def investigating() -> Complaint:
    complaint = received()
    run(complaint, complaint.acknowledge({}, POLICY, T0 + timedelta(days=1), NOW))
    run(complaint, complaint.assign("dc-7", "330602", T0 + timedelta(days=2), NOW))
    return complaint


# ---- calendar ----------------------------------------------------------------------------


def test_five_working_days_skip_the_national_day_holiday_and_count_make_up_days() -> None:
    cal = WorkCalendar()
    # Answered Friday 27 Sep 2024: Sun 29 Sep is a make-up working day (调休), 1-7 Oct are
    # the National Day holiday, so the fifth working day is Thursday 10 Oct.
    due = cal.add_working_days(datetime(2024, 9, 27, 15, 0, tzinfo=SHANGHAI), 5)
    assert due == datetime(2024, 10, 10, 23, 59, 59, tzinfo=SHANGHAI)
    # Without holidays it would have been Friday 4 Oct.
    assert due.date() > date(2024, 10, 4)


def test_a_year_the_library_does_not_know_uses_the_bureaus_lists_then_weekdays() -> None:
    holiday, make_up = date(2031, 1, 1), date(2031, 1, 4)  # a Wednesday, a Saturday
    cal = WorkCalendar(extra_holidays=[holiday], extra_workdays=[make_up])
    assert not cal.is_workday(holiday)
    assert cal.is_workday(make_up)
    assert cal.is_workday(date(2031, 1, 2)) and not cal.is_workday(date(2031, 1, 5))
    assert cal.knows(date(2031, 3, 3)) and not WorkCalendar().knows(date(2031, 3, 3))


def test_calendar_days_end_at_local_midnight() -> None:
    due = POLICY.acknowledgement_due(datetime(2024, 3, 4, 20, 30, tzinfo=UTC))  # 04:30 on 5 Mar
    assert due == datetime(2024, 3, 20, 23, 59, 59, tzinfo=SHANGHAI)


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="conclusion_days"):
        ComplaintPolicy.from_dict({"conclusion_days": 0})
    with pytest.raises(ValueError, match="unknown policy fields"):
        ComplaintPolicy.from_dict({"colour": "red"})
    with pytest.raises(ValueError):
        ComplaintPolicy.from_dict({"extra_holidays": ["2031-02-30"]})
    with pytest.raises(ValueError, match="units"):
        ComplaintPolicy.from_dict({"units": {"3306": "x"}})
    assert ComplaintPolicy.from_dict(POLICY.to_dict()) == POLICY


# ---- units -------------------------------------------------------------------------------


def test_levels_and_escalation_targets() -> None:
    assert level_of("330602001") == Level.STATION
    assert level_of("33060200101") == Level.STATION
    assert level_of("330602") == Level.BUREAU
    assert level_of("330602000") == Level.BUREAU
    assert station_of("330602") == "330602000"
    assert station_of("33060200101") == "330602001"
    assert next_level(Level.STATION) == Level.BUREAU
    assert next_level(Level.BUREAU) == Level.CITY
    assert next_level(Level.CITY) is None
    assert unit_at(Level.CITY, "330602001") == "3306"


@pytest.mark.parametrize(
    ("subject", "investigator", "conflict"),
    [
        ("330602001", "330602001", True),  # the same station
        ("330602001", "33060200101", True),  # a beat of it
        ("33060200101", "330602001", True),  # the station the complained-of beat is in
        ("330602001", "330602", False),  # the bureau's 督察 investigates its station
        ("330602001", "330602002", False),  # another station
        ("330602", "330602", True),  # the bureau's organs, investigated by the bureau
        ("330602000", "330602003", True),  # ...or by any of its units
        ("330602", "3306", False),  # the city investigates the bureau
    ],
)
def test_same_unit(subject: str, investigator: str, conflict: bool) -> None:
    assert same_unit(subject, investigator) is conflict


# ---- complaints --------------------------------------------------------------------------


def test_a_complaint_walks_its_lifecycle_and_closed_is_not_fixed() -> None:
    complaint = investigating()
    assert complaint.status == "investigating"
    assert run(
        complaint,
        complaint.conclude(Outcome.SUBSTANTIATED, ["apology"], {}, T0 + timedelta(days=10), NOW),
    ) == [c.CONCLUDED]
    assert complaint.on_time is True
    run(complaint, complaint.reply("phone", {}, T0 + timedelta(days=11), NOW))
    run(complaint, complaint.close(T0 + timedelta(days=12), NOW))
    assert (complaint.status, complaint.fixed) == ("closed", False)
    run(complaint, complaint.remedy("service_delivered", {}, T0 + timedelta(days=20), NOW))
    assert (complaint.status, complaint.fixed) == ("closed", True)
    run(complaint, complaint.reopen("disputed", {}, POLICY, T0 + timedelta(days=21), NOW))
    assert complaint.status == "reopened" and complaint.outcome is None
    run(
        complaint,
        complaint.conclude(
            Outcome.PARTIALLY_SUBSTANTIATED, ["admonishment_talk"], {}, T0 + timedelta(days=30), NOW
        ),
    )
    assert complaint.status == "concluded"


def test_the_investigator_is_never_the_subject_nor_from_the_subjects_unit() -> None:
    complaint = received()
    run(complaint, complaint.acknowledge({}, POLICY, T0 + timedelta(days=1), NOW))
    with pytest.raises(ConflictOfInterest, match="officer complained about"):
        complaint.assign("p2001", "330602", T0 + timedelta(days=2), NOW)
    with pytest.raises(ConflictOfInterest, match="part of the subject's unit"):
        complaint.assign("p3001", "330602001", T0 + timedelta(days=2), NOW)
    assert complaint.assign("dc-7", "330602", T0 + timedelta(days=2), NOW)


def test_an_extension_is_granted_once_before_the_deadline_and_at_most_30_days() -> None:
    complaint = investigating()
    due = complaint.deadlines["conclusion"].due_at
    at = T0 + timedelta(days=20)
    with pytest.raises(InvalidCommand, match="at most 30 days"):
        complaint.extend("complex", due + timedelta(days=31), {}, POLICY, at, NOW)
    with pytest.raises(InvalidCommand, match="after the current one"):
        complaint.extend("complex", due, {}, POLICY, at, NOW)
    run(complaint, complaint.extend("complex", due + timedelta(days=30), {}, POLICY, at, NOW))
    assert complaint.deadlines["conclusion"].due_at == due + timedelta(days=30)
    with pytest.raises(IllegalTransition, match="already extended"):
        complaint.extend("complex", due + timedelta(days=31), {}, POLICY, at, NOW)


def test_an_extension_after_the_deadline_is_refused() -> None:
    complaint = investigating()
    due = complaint.deadlines["conclusion"].due_at
    with pytest.raises(InvalidCommand, match="before the conclusion deadline"):
        complaint.extend(
            "complex", due + timedelta(days=5), {}, POLICY, due + timedelta(hours=1), NOW
        )


def test_sweep_records_one_overdue_fact_and_one_escalation_per_breach() -> None:
    complaint = investigating()
    due = complaint.deadlines["conclusion"].due_at
    later = due + timedelta(hours=2)
    facts = complaint.sweep(later, timedelta(seconds=60))
    assert [f.type for f in facts] == [c.OVERDUE, c.ESCALATED]
    assert facts[1].data == {
        "deadline": "conclusion",
        "from_level": "station",
        "to_level": "bureau",
        "to_unit": "330602",
    }
    run(complaint, facts)
    assert complaint.sweep(later + timedelta(days=3), timedelta(seconds=60)) == []
    # A late conclusion is recorded as late, and the breach is not repeated.
    facts = complaint.conclude(Outcome.UNSUBSTANTIATED, [], {}, later, later)
    assert [f.type for f in facts] == [c.CONCLUDED] and facts[0].data["on_time"] is False


def test_a_late_command_records_the_breach_it_passed_first() -> None:
    complaint = received()
    late = complaint.deadlines["acknowledgement"].due_at + timedelta(days=1)
    facts = complaint.acknowledge({}, POLICY, late, late)
    assert [f.type for f in facts] == [c.OVERDUE, c.ACKNOWLEDGED]


def test_correcting_the_subject_does_not_undo_an_escalation() -> None:
    complaint = received()
    late = complaint.deadlines["acknowledgement"].due_at + timedelta(days=1)
    run(complaint, complaint.sweep(late, timedelta(seconds=60)))
    assert complaint.level == Level.BUREAU
    corrections = {"subject_unit": "330602002", "station": "330602002", "level": "station"}
    run(complaint, complaint.acknowledge(corrections, POLICY, late, late))
    assert (complaint.subject_unit, complaint.level) == ("330602002", Level.BUREAU)


def test_closing_needs_a_reply_unless_nobody_can_be_answered() -> None:
    complaint = investigating()
    run(complaint, complaint.conclude(Outcome.UNSUBSTANTIATED, [], {}, T0 + timedelta(days=5), NOW))
    with pytest.raises(IllegalTransition, match="reply"):
        complaint.close(T0 + timedelta(days=6), NOW)
    anonymous = received(anonymous=True)
    run(anonymous, anonymous.conclude(Outcome.WITHDRAWN, [], {}, T0 + timedelta(days=1), NOW))
    assert run(anonymous, anonymous.close(T0 + timedelta(days=2), NOW)) == [c.CLOSED]
    assert anonymous.deadlines["acknowledgement"].cancelled


def test_substantiated_needs_actions_and_a_dispute_has_a_window() -> None:
    complaint = investigating()
    with pytest.raises(InvalidCommand, match="actions"):
        complaint.conclude(Outcome.SUBSTANTIATED, [], {}, T0 + timedelta(days=5), NOW)
    run(complaint, complaint.conclude(Outcome.UNSUBSTANTIATED, [], {}, T0 + timedelta(days=5), NOW))
    run(complaint, complaint.reply("letter", {}, T0 + timedelta(days=6), NOW))
    run(complaint, complaint.close(T0 + timedelta(days=7), NOW))
    with pytest.raises(IllegalTransition, match="substantiated"):
        complaint.remedy("other", {}, T0 + timedelta(days=8), NOW)
    with pytest.raises(InvalidCommand, match="30 days"):
        complaint.reopen("disputed", {}, POLICY, T0 + timedelta(days=60), NOW)
    assert complaint.reopen("review", {}, POLICY, T0 + timedelta(days=60), NOW)


def test_event_time_may_not_run_backwards_or_ahead() -> None:
    complaint = investigating()
    with pytest.raises(InvalidCommand, match="before the complaint's previous event"):
        complaint.conclude(Outcome.WITHDRAWN, [], {}, T0, NOW)
    with pytest.raises(InvalidCommand, match="future"):
        complaint.conclude(Outcome.WITHDRAWN, [], {}, NOW + timedelta(hours=1), NOW)


# ---- supervision orders --------------------------------------------------------------------


def issued(order_type: str = "tracking", unit: str = "330602001") -> Order:
    order = Order("o" * 32)
    data = {
        "bureau": "330602",
        "station": station_of(unit),
        "owner_unit": unit,
        "level": level_of(unit),
        "order_type": order_type,
        "item_type": "case",
        "item_id": "a" * 32,
        "case_id": "a" * 32,
        "callback_id": f"cb-{'a' * 32}-case_resolved",
    }
    due = POLICY.order_due(order_type, T0)
    for fact in order.issue(data, due, T0, NOW):
        order.apply(fact)
    return order


def test_an_overdue_order_escalates_station_bureau_city_then_stays_overdue() -> None:
    order = issued()
    grace = timedelta(seconds=60)
    assert order.due_at is not None
    t = order.due_at + timedelta(hours=1)
    first = order.sweep(t, grace, POLICY)
    assert [f.type for f in first] == [s.OVERDUE, s.ESCALATED]
    assert (first[1].data["to_level"], first[1].data["to_unit"]) == ("bureau", "330602")
    run(order, first)
    assert order.sweep(t, grace, POLICY) == []  # once per breach
    t = order.due_at + timedelta(hours=1)
    second = order.sweep(t, grace, POLICY)
    assert (second[1].data["to_level"], second[1].data["to_unit"]) == ("city", "3306")
    run(order, second)
    t = order.due_at + timedelta(hours=1)
    assert [f.type for f in order.sweep(t, grace, POLICY)] == [s.OVERDUE]
    run(order, order.sweep(t, grace, POLICY))
    assert order.sweep(t + timedelta(days=30), grace, POLICY) == []
    assert order.escalations == 2 and order.level == Level.CITY


def test_a_service_recovery_report_requests_the_follow_up_callback() -> None:
    order = issued("service_recovery")
    facts = order.report_back({"report": "已上门道歉"}, T0 + timedelta(days=1), NOW)
    assert [f.type for f in facts] == [s.REPORTED, s.FOLLOW_UP]
    assert facts[1].data == {"case_id": "a" * 32, "callback_id": f"cb-{'a' * 32}-case_resolved"}
    tracking = issued()
    assert [f.type for f in tracking.report_back({}, T0 + timedelta(days=1), NOW)] == [s.REPORTED]


def test_a_returned_report_gets_a_new_deadline_then_closes() -> None:
    order = issued("rectification")
    run(order, order.report_back({}, T0 + timedelta(days=1), NOW))
    with pytest.raises(IllegalTransition):
        order.report_back({}, T0 + timedelta(days=2), NOW)
    new_due = T0 + timedelta(days=40)
    run(order, order.return_report("incomplete", new_due, {}, T0 + timedelta(days=2), NOW))
    assert (order.status, order.due_at) == ("issued", new_due)
    run(order, order.report_back({}, T0 + timedelta(days=3), NOW))
    run(order, order.close(Verdict.RECTIFIED, {}, T0 + timedelta(days=4), NOW))
    assert order.status == "closed"


# ---- receipts, form tokens, rate limits -------------------------------------------------------


def test_receipt_codes_are_unambiguous_and_forgiving_to_type() -> None:
    code = new_receipt()
    assert len(code) == 14 and code.count("-") == 2
    assert not set(code) & set("01ILOUV")
    typed = code.replace("-", " ").lower()
    assert receipt_hash(typed) == receipt_hash(code)
    full_width = "".join(chr(ord(ch) + 0xFEE0) if ch != "-" else ch for ch in code)
    assert normalise(full_width) == code.replace("-", "")
    assert normalise("ABCD") is None


def test_form_tokens_are_bound_to_the_cookie_and_expire() -> None:
    tokens = FormTokens(KernelSettings(master_key=base64.b64encode(os.urandom(32)).decode()))
    token = tokens.issue("cookie-a", now=1_000_000)
    assert tokens.check("cookie-a", token, now=1_000_100)
    assert tokens.check("cookie-b", token, now=1_000_100) is None
    assert tokens.check("cookie-a", token, now=1_000_000 + 3 * 3600) is None
    assert tokens.check("cookie-a", token.replace(".", ".x", 1), now=1_000_100) is None
    assert tokens.check(None, token) is None


def test_the_rate_limiter_refills_over_time_and_forgets_the_oldest() -> None:
    now = [0.0]
    limiter = RateLimiter(max_clients=2, clock=lambda: now[0])
    limit = Limit(2, 60.0)
    assert limiter.take("x", limit, "a") == 0
    assert limiter.take("x", limit, "a") == 0
    assert limiter.take("x", limit, "a") == 30  # one token back after 30 s
    assert limiter.take("x", limit, "b") == 0  # another address is not affected
    now[0] = 30.0
    assert limiter.take("x", limit, "a") == 0
    limiter.take("x", limit, "c")
    assert len(limiter._buckets) == 2
