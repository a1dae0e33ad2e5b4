"""What every service's domain shares: unstored facts, deadlines, event time, refusals (no I/O).

Domain code raises these errors; the HTTP edge (`eventkit.http`) answers them with a
problem document once, for every service, so no application layer speaks HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

MAX_FUTURE = timedelta(minutes=5)


class DomainError(Exception):
    """A command the domain refuses; `extensions` are extra members of the answer."""

    status: ClassVar[int] = 422
    title: ClassVar[str] = "Unprocessable Content"
    problem_type: ClassVar[str] = "urn:jingmin:problem:invalid"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class NotFound(DomainError):
    """The command names an item that does not exist (answered 404)."""

    status = 404
    title = "Not Found"
    problem_type = "urn:jingmin:problem:not-found"


class IllegalTransition(DomainError):
    """The item is not in a state where this command makes sense (answered 409)."""

    status = 409
    title = "Conflict"
    problem_type = "urn:jingmin:problem:conflict"


class Conflict(IllegalTransition):
    """The item moved on: a pinned version is stale, or writers keep racing (answered 409)."""


class InvalidCommand(DomainError):
    """The command contradicts itself or the item's history (answered 422)."""


@dataclass(frozen=True)
class Fact:
    """A domain event before it is stored."""

    type: str
    data: dict[str, Any]
    occurred_at: datetime


@dataclass
class DeadlineState:
    """One promise an item made: when it is due, and whether it was met, breached or dropped."""

    due_at: datetime
    met_at: datetime | None = None
    breached: bool = False
    cancelled: bool = False

    @property
    def open(self) -> bool:
        return self.met_at is None and not self.cancelled


def check_time(occurred_at: datetime, now: datetime, last: datetime | None, noun: str) -> None:
    """Event time is the world's: zoned, not ahead of now, not before the item's last event."""
    if occurred_at.tzinfo is None:
        raise InvalidCommand("occurred_at must carry a time zone")
    if occurred_at > now + MAX_FUTURE:
        raise InvalidCommand("occurred_at is more than 5 minutes in the future")
    if last is not None and occurred_at < last:
        raise InvalidCommand(
            f"occurred_at {occurred_at.isoformat()} is before the {noun}'s previous event "
            f"({last.isoformat()})"
        )
