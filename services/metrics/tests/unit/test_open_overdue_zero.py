"""A county with nothing open overdue exports 0, not no series: an absent gauge blanks every
figure it is added into (the on-time rate's denominator, closed + open overdue)."""

from __future__ import annotations

from datetime import UTC, datetime

from jingmin_metrics.domain.clock import local_day, parse_us
from jingmin_metrics.domain.item import Observation
from jingmin_metrics.figures import families
from jingmin_metrics.figures.select import index
from support import _dims, snapshot_records

NOW = datetime(2026, 3, 4, 6, 0, tzinfo=UTC)
OPEN_OVERDUE = ("jingmin_intake_open_overdue_cases", "jingmin_complaints_open_overdue",
                "jingmin_supervision_open_overdue_orders")  # fmt: skip


def test_every_open_overdue_gauge_is_zero_for_a_county_with_none() -> None:
    from jingmin_metrics.figures import snapshot

    at = parse_us(NOW.isoformat())
    received = Observation(
        "intake.received", "330602", local_day(at), _dims("intake.received", "330602001", at), 3
    )
    overdue = Observation(
        "intake.open_overdue", "330603", None, _dims("intake.open_overdue", "330603001", at), 2
    )
    view = snapshot.SnapshotView()
    for key, value in snapshot_records([received, overdue]):
        view.accept(key, value)
    exported = {
        (m.name, tuple(sorted(s.labels.items())), s.value)
        for m in families.collect(index(view.merged()), NOW)
        for s in m.samples
        if m.name in OPEN_OVERDUE
    }
    assert exported == {
        ("jingmin_intake_open_overdue_cases", (("bureau", "330602"),), 0.0),
        ("jingmin_intake_open_overdue_cases", (("bureau", "330603"),), 2.0),
        ("jingmin_complaints_open_overdue", (("bureau", "330602"),), 0.0),
        ("jingmin_complaints_open_overdue", (("bureau", "330603"),), 0.0),
        ("jingmin_supervision_open_overdue_orders", (("bureau", "330602"),), 0.0),
        ("jingmin_supervision_open_overdue_orders", (("bureau", "330603"),), 0.0),
    }
