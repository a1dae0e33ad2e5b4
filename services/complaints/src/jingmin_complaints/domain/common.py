"""What every aggregate here shares: facts, deadlines, and the rule about event time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from eventkit.domain import DeadlineState, Fact, check_time

from jingmin_complaints.domain.errors import IllegalTransition

__all__ = ["DeadlineState", "Fact", "check_time"]

History = Iterable[tuple[str, Mapping[str, Any], datetime]]


def iso(t: datetime) -> str:
    return t.isoformat()


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def require(status: Any, allowed: Iterable[Any], action: str, noun: str, item_id: str) -> None:
    if status is None:
        raise IllegalTransition(f"{noun} {item_id} does not exist")
    if status not in set(allowed):
        raise IllegalTransition(f"cannot {action} a {noun} that is {status}")
