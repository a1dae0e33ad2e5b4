"""One complaint set for the headline and the equity rates: every complaint received,
whichever way it came in, counted by the party category it carries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from jingmin_metrics.figures import compute
from jingmin_metrics.figures.select import index
from support import case_events, envelope
from test_item_state import _cells, _deliveries

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


def _complaint(at: datetime, channel: str, party: str | None, cid: str | None = None) -> list:  # type: ignore[type-arg]
    cid = cid or uuid.uuid4().hex
    data = {
        "complaint_id": cid, "channel": channel, "category": "attitude",
        "subject_unit": "330602001", "level": "station", "anonymous": False,
        "deadlines": {"acknowledgement": (at + timedelta(days=1)).isoformat()},
    }  # fmt: skip
    if party:
        data["party_category"] = party
    return [envelope("complaints", "ComplaintReceived", cid, 1, at, data)]


def test_complaints_filed_through_the_complaints_api_count_for_their_party() -> None:
    # Twelve cases: eight local, four non-local; one local case is itself a complaint.
    cases = [case_events(T0 + timedelta(minutes=i), party="local") for i in range(7)]
    cases += [case_events(T0 + timedelta(minutes=10 + i), party="non_local") for i in range(4)]
    intake_complaint = case_events(T0 + timedelta(minutes=20), kind="complaint", party="local")
    cid = intake_complaint[0].streamid
    events = [e for c in [*cases, intake_complaint] for e in c]
    # The complaints service opens the intake one under the case's id, with its party; two
    # more come through the complaints API (one non-local, one with no party known).
    events += _complaint(T0 + timedelta(minutes=21), "call_110", "local", cid=cid)
    events += _complaint(T0 + timedelta(minutes=30), "visit", "non_local")
    events += _complaint(T0 + timedelta(minutes=31), "online", None)
    by_measure = index(_cells(list(_deliveries(events))))
    scope = compute.Scope(by_measure, ["330602"], None, None)

    headline = compute.summary(scope)["complaints"]
    equity = compute.equity(scope)
    groups = equity["groups"]
    assert headline["received"] == 3
    assert headline["per_1000_cases"] == 250.0  # 3 per 12 cases
    # The API complaint counts for the non-local party: 1 per 4 cases, no longer 0.
    assert groups["non_local"]["complaints"] == 1
    assert groups["non_local"]["complaints_per_1000_cases"] == 250.0
    assert groups["local"]["complaints"] == 1
    assert groups["local"]["complaints_per_1000_cases"] == 125.0
    assert groups["vulnerable"]["complaints"] == 0
    # Same set: the parties and the unknown make the headline count.
    parties = sum(g["complaints"] for g in groups.values())
    assert parties + equity["complaints_party_unknown"] == headline["received"]
