"""The chaos load simulates the same hours whatever the hour or day `make chaos` runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chaoslib.load import WINDOW_END_HOUR, window_end
from jingmin_sim.model import TZ, is_workday


def test_the_window_ends_at_noon_of_a_recent_working_day() -> None:
    start = datetime(2026, 9, 28, tzinfo=UTC)  # into the National Day holiday and out
    for step in range(0, 20 * 24 * 4):
        now = start + timedelta(minutes=15 * step)
        end = window_end(now)
        local = end.astimezone(TZ)
        assert end <= now
        assert (local.hour, local.minute, local.second) == (WINDOW_END_HOUR, 0, 0)
        assert now - end < timedelta(days=4)
        # The latest noon past on a working day, if one of the last four was one.
        noons = [local + timedelta(days=k) for k in range(4) if local + timedelta(days=k) <= now]
        assert not any(is_workday(n.date()) for n in noons[1:]), now
        if not is_workday(local.date()):  # a long holiday: the latest noon past
            assert now - end < timedelta(days=1)
