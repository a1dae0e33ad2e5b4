"""Event-time helpers: exact integer microseconds, and the bureau's calendar day and hour.

Every Chinese bureau keeps Beijing time (UTC+8, no daylight saving), so a day or an hour of
the bureau's calendar is a fixed offset from UTC; the SQL oracle uses the same rule.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

OFFSET = timedelta(hours=8)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_MS = 1000
US_PER_HOUR = 3_600_000_000


def parse_us(value: str) -> int:
    """An RFC 3339 time as integer microseconds since the epoch (exact, no float rounding)."""
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError(f"time without a zone: {value!r}")
    return (t - _EPOCH) // timedelta(microseconds=1)


def to_datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def local_day(us: int) -> str:
    """The bureau's calendar day (Beijing) of an instant, as YYYY-MM-DD."""
    return (to_datetime(us) + OFFSET).date().isoformat()


def local_hour(us: int) -> int:
    """The hour of the bureau's day (0-23) of an instant."""
    return (to_datetime(us) + OFFSET).hour


def day_start_us(day: str) -> int:
    """The first microsecond of a bureau day, in UTC epoch microseconds."""
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC) - OFFSET
    return (start - _EPOCH) // timedelta(microseconds=1)


def now_us() -> int:
    return (datetime.now(UTC) - _EPOCH) // timedelta(microseconds=1)


def latency_ms(start_us: int, end_us: int) -> int:
    """Whole milliseconds from start to end, floored (the oracle floors the same way)."""
    return (end_us - start_us) // US_PER_MS
