"""Inspections, their findings and accountability actions in the figures: each completed
inspection counts once with the kind it started with, its findings by severity; each
accountability action by kind and basis; delivered twice, nothing counts twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jingmin_metrics.domain.facts import make_fact
from jingmin_metrics.figures import compute
from jingmin_metrics.figures.select import index
from jingmin_metrics.stream.processor import Processor
from support import envelope

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
INSPECTION, ACTION = "insp-1", "acc-1"


def _events() -> list:  # type: ignore[type-arg]
    t = T0 + timedelta(hours=3)
    return [
        envelope("supervision", "InspectionStarted", INSPECTION, 1, T0, {
            "inspection_id": INSPECTION, "kind": "on_site", "unit": "330602001"}),
        envelope("supervision", "InspectionFindingRecorded", INSPECTION, 2, t, {
            "inspection_id": INSPECTION, "finding_no": 1, "code": "x", "severity": "violation"}),
        envelope("supervision", "InspectionCompleted", INSPECTION, 3, t, {
            "inspection_id": INSPECTION, "findings": 4, "deficiencies": 2, "violations": 1}),
        envelope("supervision", "AccountabilityActionTaken", ACTION, 1, t, {
            "action_id": ACTION, "kind": "admonishment_talk", "unit": "330602001",
            "basis_type": "inspection", "basis_id": INSPECTION}),
    ]  # fmt: skip


def _scope(events: list) -> compute.Scope:  # type: ignore[type-arg]
    proc = Processor()
    proc.load(0, [])
    for e in events:
        fact = make_fact(e.type, e.data, e.data["occurred_at"], e.bureau, e.data["station"])
        if fact is not None:
            proc.apply(0, e.streamid.encode(), f"supervision:{e.streamid}", e.streamversion, fact)
    proc.settle(0)
    cells = {k: dict(v) for k, v in proc.partitions[0].cells.chunks.items() if v}
    return compute.Scope(index(cells), ["330602"], None, None)


def test_inspections_findings_and_accountability_count_once() -> None:
    for events in (_events(), _events() + _events()):  # the second: every record again
        s = compute.summary(_scope(events))["supervision"]
        assert s["inspections"] == 1 and s["inspections_by_kind"] == {"on_site": 1}
        # 4 findings: 2 deficiencies, 1 violation, so 1 observation.
        assert s["findings_by_severity"] == {"observation": 1, "deficiency": 2, "violation": 1}
        assert s["accountability_actions"] == 1
        assert s["accountability_by_kind"] == {"admonishment_talk": 1}


def test_an_inspection_not_yet_completed_counts_nothing() -> None:
    s = compute.summary(_scope(_events()[:2]))["supervision"]
    assert (s["inspections"], s["findings_by_severity"]) == (0, {})
