"""Fixed simulated windows for tests and drills that must simulate the same thing on every run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jingmin_sim.model import TZ, is_workday


def fixed_window_end(
    reference: datetime,
    days: float,
    *,
    now: datetime | None = None,
    margin: timedelta = timedelta(days=1),
) -> datetime:
    """`reference` whenever it lies at least `margin` in the past; else whole weeks earlier.

    A test fixes its window at a date so every run simulates the same stories. On a machine
    whose clock reads earlier than that date (a wrong clock, or a suite run with its date
    shifted on purpose), the window would lie in the future, which the APIs refuse. Then the
    window moves back by whole weeks, keeping its weekday and Beijing hour, to the latest
    week in which its days are working days whenever the reference's are (so office
    channels are open as the test expects: never into a Golden Week).
    """
    now = now or datetime.now(UTC)
    latest = now - margin
    if reference <= latest:
        return reference
    wanted = _workdays(reference, days)
    end = reference - timedelta(weeks=1)
    while end > latest or _workdays(end, days) != wanted:
        end -= timedelta(weeks=1)
        if reference - end > timedelta(weeks=60):  # every week has been a holiday: give up
            raise ValueError(f"no week before {latest} like {reference}")
    return end


def recent_window_end(
    reference: datetime,
    days: float,
    *,
    now: datetime | None = None,
    margin: timedelta = timedelta(days=1),
) -> datetime:
    """The latest end whole weeks from `reference` at least `margin` in the past whose days
    are working days whenever the reference's are.

    For a test whose figures are read in windows that end now (the exporter's rolling 7 and
    30 days): the same weekday, Beijing hour and working days as the reference, so the same
    kind of traffic, and always recent enough to lie inside those windows.
    """
    now = now or datetime.now(UTC)
    wanted = _workdays(reference, days)
    end = reference + timedelta(weeks=(now - margin - reference) // timedelta(weeks=1))
    for _ in range(60):
        if _workdays(end, days) == wanted:
            return end
        end -= timedelta(weeks=1)
    raise ValueError(f"no week before {now - margin} like {reference}")


def _workdays(end: datetime, days: float) -> tuple[bool, ...]:
    last = end.astimezone(TZ).date()
    first = (end - timedelta(days=days)).astimezone(TZ).date()
    return tuple(is_workday(first + timedelta(days=i)) for i in range((last - first).days + 1))
