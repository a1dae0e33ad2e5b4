"""The Callback aggregate and the callback policy, given/when/then, with no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from jingmin_visits.domain.callback import (
    ANSWERED,
    ATTEMPTED,
    EXPIRED,
    SCHEDULED,
    SUPPRESSED,
    Callback,
    Resolution,
    callback_id,
)
from jingmin_visits.domain.errors import IllegalTransition, InvalidCommand
from jingmin_visits.domain.facts import Fact
from jingmin_visits.domain.policy import CallbackPolicy, TriggerRule
from jingmin_visits.domain.vocabulary import AttemptOutcome, Satisfaction, Security, Status

SHANGHAI = ZoneInfo("Asia/Shanghai")
CASE = "0123456789abcdef0123456789abcdef"
SUBJECT = "sub_ABCDEFGH1234"


def local(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 5, day, hour, minute, tzinfo=SHANGHAI)


def resolution(**kw: object) -> Resolution:
    values: dict[str, object] = {
        "case_id": CASE,
        "bureau": "330602",
        "station": "330602001",
        "kind": "alarm",
        "channel": "call_110",
        "category": "dispute.neighbour",
        "subject_id": SUBJECT,
        "resolved_at": local(10),
    }
    values.update(kw)
    return Resolution(**values)  # type: ignore[arg-type]


def given(*facts: Fact) -> Callback:
    cb = Callback(callback_id(CASE, "case_resolved"))
    for fact in facts:
        cb.apply(fact)
    return cb


def scheduled(r: Resolution | None = None, policy: CallbackPolicy | None = None) -> Fact:
    [fact] = given().decide(r or resolution(), policy or CallbackPolicy(), opted_out=False)
    return fact


# ---- scheduling -----------------------------------------------------------------------------


def test_a_resolved_110_alarm_gets_an_sms_survey_within_two_hours() -> None:
    fact = scheduled()

    assert fact.type == SCHEDULED
    assert fact.data["mode"] == "sms"
    assert datetime.fromisoformat(fact.data["due_at"]) == local(12)
    assert "original_due_at" not in fact.data
    assert fact.data["case_id"] == CASE and fact.data["trigger"] == "case_resolved"
    assert fact.data["subject_id"] == SUBJECT
    assert fact.occurred_at == local(10)


def test_other_resolved_cases_get_a_phone_callback_within_three_days() -> None:
    fact = scheduled(resolution(kind="service", channel="window"))

    assert fact.data["mode"] == "phone"
    assert datetime.fromisoformat(fact.data["due_at"]) == local(10, day=4)


def test_a_resolved_petition_is_its_own_trigger() -> None:
    r = resolution(kind="petition", channel="letter")
    cb = Callback(callback_id(CASE, "petition_resolved"))

    [fact] = cb.decide(r, CallbackPolicy(), opted_out=False)

    assert fact.data["trigger"] == "petition_resolved" and fact.data["mode"] == "phone"


def test_a_due_time_at_23_00_local_shifts_to_08_00_next_morning() -> None:
    # Resolved at 21:00: the 2 h window ends at 23:00, inside quiet hours.
    fact = scheduled(resolution(resolved_at=local(21)))

    assert datetime.fromisoformat(fact.data["due_at"]) == local(8, day=2)
    assert datetime.fromisoformat(fact.data["original_due_at"]) == local(23)


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        (local(23), local(8, day=2)),
        (local(20), local(8, day=2)),
        (local(3, 30), local(8)),
        (local(7, 59), local(8)),
        (local(8), local(8)),
        (local(19, 59), local(19, 59)),
        (local(12), local(12)),
    ],
)
def test_quiet_hours_shift_but_never_drop(due: datetime, expected: datetime) -> None:
    shifted = CallbackPolicy().out_of_quiet_hours(due.astimezone(UTC))

    assert shifted == expected


def test_quiet_hours_follow_the_bureaus_time_zone() -> None:
    policy = CallbackPolicy(timezone="Asia/Urumqi", quiet_start="21:00", quiet_end="09:00")
    urumqi = ZoneInfo("Asia/Urumqi")

    shifted = policy.out_of_quiet_hours(datetime(2026, 5, 1, 22, tzinfo=urumqi))

    assert shifted == datetime(2026, 5, 2, 9, tzinfo=urumqi)


def test_a_kind_with_no_rule_gets_no_callback() -> None:
    policy = CallbackPolicy(triggers=(TriggerRule("case_resolved", "sms", 60, kinds=("alarm",)),))

    assert given().decide(resolution(kind="tip"), policy, opted_out=False) == []


# ---- suppression ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "reason"),
    [
        ("domestic_violence", "domestic_violence"),
        ("domestic_violence.repeat", "domestic_violence"),
        ("sexual_offence", "sexual_offence"),
        ("juvenile", "juvenile"),
        ("death_or_serious_injury", "death_or_serious_injury"),
        ("informant", "informant"),
        ("covert", "covert"),
    ],
)
def test_sensitive_categories_are_suppressed_with_their_reason(category: str, reason: str) -> None:
    [fact] = given().decide(resolution(category=category), CallbackPolicy(), opted_out=False)

    assert fact.type == SUPPRESSED
    assert fact.data["reason"] == reason


def test_a_person_who_opted_out_is_suppressed() -> None:
    [fact] = given().decide(resolution(), CallbackPolicy(), opted_out=True)

    assert (fact.type, fact.data["reason"]) == (SUPPRESSED, "opted_out")


def test_a_decided_callback_cannot_be_decided_again() -> None:
    cb = given(scheduled())

    with pytest.raises(IllegalTransition):
        cb.decide(resolution(), CallbackPolicy(), opted_out=False)


# ---- attempts, answers, expiry --------------------------------------------------------------


def test_attempts_are_numbered_and_a_decline_closes_the_callback() -> None:
    cb = given(scheduled())
    now = local(11)

    [first] = cb.attempt(AttemptOutcome.UNREACHABLE, local(10, 30), now)
    cb.apply(first)
    [second] = cb.attempt(AttemptOutcome.DECLINED, local(10, 45), now)
    cb.apply(second)

    assert (first.type, first.data) == (ATTEMPTED, {"outcome": "unreachable", "attempt": 1})
    assert second.data == {"outcome": "declined", "attempt": 2}
    assert cb.status == Status.DECLINED
    with pytest.raises(IllegalTransition):
        cb.answer(Satisfaction.SATISFIED, Security.SAFE, None, local(10, 50), now)


def test_an_answer_carries_codes_and_only_a_sealed_comment() -> None:
    cb = given(scheduled())
    sealed = {"v": "1", "sub": SUBJECT, "n": "x", "ct": "y"}

    [fact] = cb.answer(
        Satisfaction.BASICALLY_SATISFIED, Security.UNSAFE, sealed, local(11), local(11)
    )
    cb.apply(fact)

    assert fact.type == ANSWERED
    assert fact.data["satisfaction"] == "basically_satisfied"
    assert fact.data["security"] == "unsafe"
    assert fact.data["has_comment"] is True and fact.data["comment"] == sealed
    assert cb.status == Status.ANSWERED


def test_commands_refuse_impossible_times_and_missing_callbacks() -> None:
    cb = given(scheduled())
    with pytest.raises(InvalidCommand):
        cb.attempt(AttemptOutcome.REACHED, local(9), local(11))  # before it was scheduled
    with pytest.raises(InvalidCommand):
        cb.attempt(AttemptOutcome.REACHED, local(11) + timedelta(hours=1), local(11))
    with pytest.raises(IllegalTransition):
        given().attempt(AttemptOutcome.REACHED, local(11), local(11))
    with pytest.raises(IllegalTransition):
        given(scheduled(resolution(category="covert"))).attempt(
            AttemptOutcome.REACHED, local(11), local(11)
        )


def test_a_callback_expires_once_after_its_window() -> None:
    cb = given(scheduled())
    assert cb.expires_at is not None

    assert cb.expire(cb.expires_at - timedelta(seconds=1)) == []
    [fact] = cb.expire(cb.expires_at + timedelta(hours=1))
    cb.apply(fact)

    assert fact.type == EXPIRED and fact.occurred_at == cb.expires_at
    assert cb.status == Status.EXPIRED
    assert cb.expire(cb.expires_at + timedelta(days=1)) == []


# ---- policy as data -------------------------------------------------------------------------


def test_the_policy_round_trips_and_refuses_nonsense() -> None:
    policy = CallbackPolicy()
    assert CallbackPolicy.from_dict(policy.to_dict()) == policy

    bad: list[dict[str, object]] = [
        {"unknown": 1},
        {"timezone": "Mars/Olympus"},
        {"quiet_start": "25:00"},
        {"suppress_categories": {"x": "not_a_reason"}},
        {"triggers": [{"trigger": "case_resolved", "mode": "fax", "window_seconds": 60}]},
        {"triggers": [{"trigger": "case_resolved", "mode": "sms", "window_seconds": 0}]},
        {"expire_after_seconds": -1},
    ]
    for raw in bad:
        with pytest.raises(ValueError):
            CallbackPolicy.from_dict(raw)
