"""What every aggregate of this service shares: the unstored fact and the event-time rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jingmin_visits.domain.errors import InvalidCommand

MAX_FUTURE = timedelta(minutes=5)


@dataclass(frozen=True)
class Fact:
    """A domain event before it is stored."""

    type: str
    data: dict[str, Any]
    occurred_at: datetime


def check_time(occurred_at: datetime, now: datetime, last: datetime | None, noun: str) -> None:
    """Event time must be zoned, not in the future, and not before the stream's last event."""
    if occurred_at.tzinfo is None:
        raise InvalidCommand("occurred_at must carry a time zone")
    if occurred_at > now + MAX_FUTURE:
        raise InvalidCommand("occurred_at is more than 5 minutes in the future")
    if last is not None and occurred_at < last:
        raise InvalidCommand(
            f"occurred_at {occurred_at.isoformat()} is before the {noun}'s previous event "
            f"({last.isoformat()})"
        )
