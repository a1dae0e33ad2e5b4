"""Kind `complaint`: intake registers and hands over; the complaints service owns the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from jingmin_intake.domain.case import RECEIVED, REJECTED, Case, Fact
from jingmin_intake.domain.errors import InvalidCommand
from jingmin_intake.domain.policy import DeadlinePolicy
from jingmin_intake.domain.vocabulary import ComplaintCategory, Kind

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def test_a_complaint_promises_first_contact_only() -> None:
    p = DeadlinePolicy()
    # Not a dispatch (even on 110), not a reply: acceptance and conclusion are the
    # complaints service's promises, counted there.
    assert p.on_receipt("complaint", "call_110", "urgent", T0) == {"first_contact": T0 + DAY}
    assert p.on_receipt("complaint", "window", "general", T0) == {"first_contact": T0 + DAY}
    # A written channel's own promise is stricter and still applies.
    assert p.on_receipt("complaint", "online", "general", T0) == {
        "first_contact": T0 + timedelta(hours=2)
    }
    assert p.on_acceptance("complaint", T0) == {}


def test_a_bureau_sets_its_own_complaint_handover_time() -> None:
    p = DeadlinePolicy.from_dict({"complaint_first_contact_seconds": 4 * 3600})
    assert p.on_receipt("complaint", "visit", "general", T0) == {
        "first_contact": T0 + timedelta(hours=4)
    }
    assert DeadlinePolicy.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError):
        DeadlinePolicy.from_dict({"complaint_first_contact_seconds": 0})


def test_the_complaint_categories_are_the_complaints_services() -> None:
    assert [c.value for c in ComplaintCategory] == [
        "attitude",
        "inaction",
        "misconduct",
        "unfair_enforcement",
        "corruption",
        "service_delay",
        "discipline",
        "other",
    ]
    assert Kind.COMPLAINT == "complaint"


def complaint() -> Case:
    data = {
        "bureau": "330602",
        "station": "330602001",
        "channel": "window",
        "kind": "complaint",
        "priority": "general",
        "area_type": "urban",
        "category": "attitude",
        "deadlines": {"first_contact": (T0 + DAY).isoformat()},
    }
    return Case.from_history("0" * 32, [(RECEIVED, data, T0)])


def test_a_complaint_is_never_dropped_without_a_specific_reason_and_explanation() -> None:
    case = complaint()
    later = T0 + timedelta(minutes=5)
    for reason, explained in (("other", True), ("duplicate", False)):
        with pytest.raises(InvalidCommand, match="complaint can only be rejected"):
            case.reject(reason, {}, explained, later, later)
    [fact] = case.reject("duplicate", {}, True, later, later)
    assert fact == Fact(REJECTED, {"reason": "duplicate"}, later)
