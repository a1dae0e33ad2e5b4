"""The public daily topic counts on-time as the boards do (DOMAIN.md §4): closed on time /
(closed + open and already overdue)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from eventkit.contracts import SchemaRegistry
from jingmin_metrics.domain.clock import local_day, parse_us
from jingmin_metrics.figures import compute, public
from jingmin_metrics.figures.select import index
from support import case_events, envelope
from test_item_state import _cells, _deliveries

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
BREACHED = "jingmin.intake.DeadlineBreached.v1"


def _on_time(at: datetime) -> list:  # type: ignore[type-arg]
    """Dispatched 90 s after receipt with no breach recorded: closed on time."""
    return [e for e in case_events(at, cid=uuid.uuid4().hex) if e.type != BREACHED]


def _open_overdue(at: datetime) -> list:  # type: ignore[type-arg]
    """Received, first contact, dispatch deadline breached; nothing after: still open."""
    return case_events(at, cid=uuid.uuid4().hex)[:3]


def test_open_cases_past_their_deadline_count_against_the_public_on_time_rate() -> None:
    events = [e for i in range(6) for e in _on_time(T0 + timedelta(minutes=i))]
    events += [e for i in range(5) for e in _open_overdue(T0 + timedelta(minutes=10 + i))]
    by_measure = index(_cells(list(_deliveries(events))))
    day = local_day(parse_us(T0.isoformat()))

    body = public.daily(by_measure, "330602", day)
    # 6 closed on time; 5 open and overdue since that day: 6 / 11, not 6 / 6.
    assert body["cases_closed_on_time"] == {"numerator": 6, "denominator": 11, "rate": 0.5455}
    # As the publisher sends it (it adds the time it generated the record).
    SchemaRegistry.load().validate(public.TYPE, {**body, "generated_at": "2026-03-03T00:00:00Z"})

    # The boards' rule over the same day gives the same figure.
    board = compute.summary(compute.Scope(by_measure, ["330602"], day, day))["intake"]
    assert board["on_time"] == body["cases_closed_on_time"]


def test_an_overdue_case_closed_later_leaves_the_breach_day_for_its_closing_day() -> None:
    late = case_events(T0, cid=uuid.uuid4().hex)[:3]
    still_open = index(_cells(list(_deliveries(late))))
    day = local_day(parse_us(T0.isoformat()))
    assert compute.Scope(still_open, ["330602"], day, day).n("intake.overdue_open") == 1

    cid = late[0].streamid
    resolved = envelope("intake", "CaseResolved", cid, 4, T0 + timedelta(days=2), {"case_id": cid})
    by_measure = index(_cells(list(_deliveries([*late, resolved]))))
    later = local_day(parse_us((T0 + timedelta(days=2)).isoformat()))
    assert compute.Scope(by_measure, ["330602"], day, day).n("intake.overdue_open") == 0
    closed = compute.Scope(by_measure, ["330602"], later, later).each("intake.closed")
    assert [c.dim("on_time") for c in closed] == ["false"]
