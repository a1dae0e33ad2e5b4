"""What every aggregate of this service shares: the unstored fact and the event-time rules."""

from eventkit.domain import MAX_FUTURE, Fact, check_time

__all__ = ["MAX_FUTURE", "Fact", "check_time"]
