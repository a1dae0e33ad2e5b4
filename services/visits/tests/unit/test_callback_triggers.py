"""The enforcement, crime-victim and preventable-case triggers as policy rules. No I/O."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from jingmin_visits.domain.callback import SCHEDULED, SUPPRESSED, Callback, Resolution, callback_id
from jingmin_visits.domain.policy import CallbackPolicy
from jingmin_visits.domain.vocabulary import Trigger

SHANGHAI = ZoneInfo("Asia/Shanghai")
CASE = "0123456789abcdef0123456789abcdef"
NEW_TRIGGERS = ("enforcement_decision", "crime_victim", "preventable_case")


def local(hour: int, day: int = 4) -> datetime:
    return datetime(2026, 5, day, hour, tzinfo=SHANGHAI)


def follow_up(trigger: str, **kw: object) -> Resolution:
    values: dict[str, object] = {
        "case_id": CASE,
        "bureau": "330602",
        "station": "330602001",
        "kind": "alarm",
        "channel": "call_110",
        "category": "theft",
        "subject_id": "sub_ABCDEFGH1234",
        "resolved_at": local(10),
        "trigger": trigger,
    }
    values.update(kw)
    return Resolution(**values)  # type: ignore[arg-type]


def decide(r: Resolution, policy: CallbackPolicy | None = None, opted_out: bool = False) -> list:
    cb = Callback(callback_id(r.case_id, r.trigger or ""))
    return cb.decide(r, policy or CallbackPolicy(), opted_out)


@pytest.mark.parametrize(
    ("trigger", "days", "purpose"),
    [
        ("enforcement_decision", 7, "survey"),
        ("crime_victim", 7, "notification"),
        ("preventable_case", 3, "prevention_advice"),
    ],
)
def test_the_default_rules(trigger: str, days: int, purpose: str) -> None:
    # Any kind and channel: the fact itself (a decision, a classification) is what counts.
    for kind, channel in (("alarm", "call_110"), ("tip", "hotline"), ("help", "online")):
        [fact] = decide(follow_up(trigger, kind=kind, channel=channel))
        assert fact.type == SCHEDULED
        assert fact.data["trigger"] == trigger
        assert (fact.data["mode"], fact.data["purpose"]) == ("phone", purpose)
        assert datetime.fromisoformat(fact.data["due_at"]) == local(10) + timedelta(days=days)
        assert fact.occurred_at == local(10)
    [rule] = [r for r in CallbackPolicy().triggers if r.trigger == trigger]
    assert rule.window_seconds == days * 86400


def test_a_resolution_callback_is_a_survey() -> None:
    [fact] = decide(follow_up("case_resolved"))
    assert fact.data["purpose"] == "survey"


@pytest.mark.parametrize("trigger", NEW_TRIGGERS)
@pytest.mark.parametrize(
    "category",
    [
        "domestic_violence",
        "sexual_offence.rape",
        "juvenile",
        "death_or_serious_injury",
        "informant",
        "covert",
    ],
)
def test_sensitive_matters_are_suppressed_by_either_category(trigger: str, category: str) -> None:
    reason = category.split(".")[0]
    [by_receipt] = decide(follow_up(trigger, category=category))
    [by_classification] = decide(follow_up(trigger, category="theft", classified_category=category))
    for fact in (by_receipt, by_classification):
        assert (fact.type, fact.data["reason"], fact.data["trigger"]) == (
            SUPPRESSED,
            reason,
            trigger,
        )


@pytest.mark.parametrize("trigger", NEW_TRIGGERS)
def test_an_opt_out_suppresses_and_quiet_hours_shift(trigger: str) -> None:
    [fact] = decide(follow_up(trigger), opted_out=True)
    assert (fact.type, fact.data["reason"]) == (SUPPRESSED, "opted_out")
    # Decided at 21:30: the window ends at 21:30 too, inside 20:00-08:00, so 08:00 next day.
    [late] = decide(follow_up(trigger, resolved_at=local(21) + timedelta(minutes=30)))
    due = datetime.fromisoformat(late.data["due_at"]).astimezone(SHANGHAI)
    assert (due.hour, due.minute) == (8, 0)
    assert datetime.fromisoformat(late.data["original_due_at"]) > local(21)


def test_the_rules_are_bureau_data() -> None:
    policy = CallbackPolicy.from_dict(
        {
            "triggers": [
                {
                    "trigger": "crime_victim",
                    "mode": "sms",
                    "window_seconds": 86400,
                    "purpose": "notification",
                },
                {"trigger": "preventable_case", "mode": "phone", "window_seconds": 3600,
                 "kinds": ["tip"]},
            ]
        }
    )  # fmt: skip
    assert CallbackPolicy.from_dict(policy.to_dict()) == policy
    [victim] = decide(follow_up("crime_victim"), policy)
    assert (victim.data["mode"], victim.data["purpose"]) == ("sms", "notification")
    assert decide(follow_up("enforcement_decision"), policy) == []  # this bureau has none
    assert decide(follow_up("preventable_case"), policy) == []  # alarms are not in its rule
    [tip] = decide(follow_up("preventable_case", kind="tip"), policy)
    assert tip.data["purpose"] == "survey"  # a rule without a purpose is a survey
    with pytest.raises(ValueError):
        CallbackPolicy.from_dict(
            {"triggers": [{"trigger": "crime_victim", "mode": "phone", "window_seconds": 60,
                           "purpose": "interrogation"}]}
        )  # fmt: skip
    with pytest.raises(ValueError):
        CallbackPolicy.from_dict(
            {"triggers": [{"trigger": "parking_ticket", "mode": "phone", "window_seconds": 60}]}
        )


def test_each_trigger_has_its_own_stream() -> None:
    ids = {callback_id(CASE, t) for t in Trigger}
    assert len(ids) == len(Trigger)
    assert all(len(t) <= 32 for t in Trigger)  # metrics reads the trigger off the stream id
