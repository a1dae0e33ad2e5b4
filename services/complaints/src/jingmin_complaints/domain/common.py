"""What every aggregate here shares: facts, deadlines, and the rule about event time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jingmin_complaints.domain.errors import IllegalTransition, InvalidCommand

MAX_FUTURE = timedelta(minutes=5)

History = Iterable[tuple[str, Mapping[str, Any], datetime]]


@dataclass(frozen=True)
class Fact:
    """A domain event before it is stored."""

    type: str
    data: dict[str, Any]
    occurred_at: datetime


@dataclass
class DeadlineState:
    due_at: datetime
    met_at: datetime | None = None
    breached: bool = False
    cancelled: bool = False

    @property
    def open(self) -> bool:
        return self.met_at is None and not self.cancelled


def iso(t: datetime) -> str:
    return t.isoformat()


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def check_time(occurred_at: datetime, now: datetime, last: datetime | None, noun: str) -> None:
    """Event time is the world's: not ahead of now, not before the item's previous event."""
    if occurred_at.tzinfo is None:
        raise InvalidCommand("occurred_at must carry a time zone")
    if occurred_at > now + MAX_FUTURE:
        raise InvalidCommand("occurred_at is more than 5 minutes in the future")
    if last is not None and occurred_at < last:
        raise InvalidCommand(
            f"occurred_at {occurred_at.isoformat()} is before the {noun}'s previous event "
            f"({last.isoformat()})"
        )


def require(status: Any, allowed: Iterable[Any], action: str, noun: str, item_id: str) -> None:
    if status is None:
        raise IllegalTransition(f"{noun} {item_id} does not exist")
    if status not in set(allowed):
        raise IllegalTransition(f"cannot {action} a {noun} that is {status}")
