"""The enforcement, crime-victim and preventable-case callbacks in the figures: the intake facts
that trigger them are not metrics inputs; their callbacks count by trigger, and their answers
count in satisfaction (a notification is an answered survey too; service recovery stays apart)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jingmin_metrics.domain.facts import callback_root, make_fact
from jingmin_metrics.figures import compute
from jingmin_metrics.figures.select import index
from jingmin_metrics.stream.processor import Processor
from support import case_events, envelope

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
ANSWERS = {
    "enforcement_decision": "satisfied",
    "crime_victim": "basically_satisfied",
    "preventable_case": "satisfied",
    "service_recovery": "dissatisfied",
}


def _events() -> list:  # type: ignore[type-arg]
    events = case_events(T0)  # its case_resolved callback is answered 不满意
    cid = events[0].data["case_id"]
    iso = lambda t: t.astimezone(UTC).isoformat()  # noqa: E731
    t = T0 + timedelta(days=1)
    events += [
        envelope("intake", "EnforcementDecided", cid, 7, t, {"case_id": cid,
                 "decision": "administrative_penalty"}),
        envelope("intake", "CaseClassified", cid, 8, t, {"case_id": cid, "crime_victim": True,
                 "preventable": True, "category": "theft"}),
    ]  # fmt: skip
    for trigger, satisfaction in ANSWERS.items():
        cb = f"cb-{cid}-{trigger}"
        events += [
            envelope("visits", "CallbackScheduled", cb, 1, t, {
                "callback_id": cb, "case_id": cid, "trigger": trigger, "mode": "phone",
                "purpose": "survey", "due_at": iso(t + timedelta(days=3)),
                "expires_at": iso(t + timedelta(days=10)),
            }),
            envelope("visits", "CallbackAnswered", cb, 2, t + timedelta(hours=5), {
                "callback_id": cb, "satisfaction": satisfaction, "security": "safe",
                "has_comment": False, "case_id": cid, "trigger": trigger,
            }),
        ]  # fmt: skip
    return events


def test_the_triggering_intake_facts_are_not_metrics_inputs() -> None:
    for e in _events():
        if e.type.split(".")[2] in ("EnforcementDecided", "CaseClassified"):
            assert make_fact(e.type, e.data, e.data["occurred_at"], e.bureau, "x") is None


def test_each_trigger_counts_apart_and_in_satisfaction() -> None:
    proc = Processor()
    proc.load(0, [])
    for e in _events():
        fact = make_fact(e.type, e.data, e.data["occurred_at"], e.bureau, e.data["station"])
        if fact is None:
            continue  # skipped, as the processors skip it
        context = e.type.split(".")[1]
        root = callback_root(e.streamid, e.data) if context == "visits" else e.streamid
        proc.apply(0, root.encode(), f"{context}:{e.streamid}", e.streamversion, fact)
    proc.settle(0)
    cells = {k: dict(v) for k, v in proc.partitions[0].cells.chunks.items() if v}
    scope = compute.Scope(index(cells), ["330602"], None, None)

    assert scope.by("callback.scheduled", "trigger") == {
        "case_resolved": 1, "enforcement_decision": 1, "crime_victim": 1,
        "preventable_case": 1, "service_recovery": 1,
    }  # fmt: skip
    callbacks = compute.summary(scope)["callbacks"]
    # 不满意 (case_resolved) + the three new triggers' answers; the recovery's apart.
    assert callbacks["satisfaction"] == {"numerator": 3, "denominator": 4, "rate": 0.75}
    assert callbacks["service_recovery"]["denominator"] == 1
    assert callbacks["coverage"]["denominator"] == 4
