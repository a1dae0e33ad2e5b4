"""The 12345 hotline's partner topic (`intake.hotline12345.public.v1`, docs/partners.md).

One message per status change of a case that was transferred to the hotline or came from
it: category, times and status only. No subject, no officer, no free text, and never a
confidential matter. The snapshot is computed when the event is written and stored inside
it (`hotline`), so the relay and a replay years later publish the same bytes without
needing the case's state.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from eventkit.store import RecordedEvent

from jingmin_intake.domain import case as events
from jingmin_intake.domain.case import Case, Fact

TOPIC = "intake.hotline12345.public.v1"
SOURCE = "/jingmin/intake/hotline12345"
TYPE = "jingmin.intake.HotlineCaseStatusChanged.v1"
CONFIDENTIAL = frozenset({"informant", "covert"})

STATUS_OF = {
    events.RECEIVED: "received",
    events.TRANSFERRED: "transferred",
    events.RESOLVED: "resolved",
    events.REJECTED: "rejected",
    events.REOPENED: "reopened",
    events.CLOSED: "closed",
}


def _confidential(category: str | None) -> bool:
    return bool(category) and str(category).split(".", 1)[0] in CONFIDENTIAL


def snapshot(case: Case, fact: Fact) -> dict[str, Any] | None:
    """What the hotline may see of this fact, or None when it is none of its business.

    `case` is the state after the command's facts were applied.
    """
    status = STATUS_OF.get(fact.type)
    if status is None or case.hotline_direction is None or _confidential(case.category):
        return None
    out: dict[str, Any] = {
        "direction": case.hotline_direction,
        "status": status,
        "kind": case.kind,
        "channel": case.channel,
        "category": case.category,
        "hotline_ref": case.hotline_ref,
        "received_at": _iso(case.received_at),
        "transferred_at": _iso(case.transferred_at),
        "resolved_at": _iso(case.resolved_at),
        "closed_at": _iso(case.closed_at),
        "reply_due_at": _iso(case.reply_due_at),
        "person_informed": case.person_informed,
        "rejection_reason": fact.data.get("reason") if fact.type == events.REJECTED else None,
    }
    return {k: v for k, v in out.items() if v is not None}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def data_of(event: RecordedEvent) -> dict[str, Any] | None:
    hotline = event.data.get("hotline")
    if not hotline:
        return None
    return {
        "case_id": event.stream_id,
        "bureau": event.bureau,
        "station": event.data.get("station", ""),
        # In UTC, as every published time (the relay and replay then agree byte for byte).
        "occurred_at": event.occurred_at.astimezone(UTC).isoformat(),
        **hotline,
    }
