"""Fixed simulated windows stay fixed on every real run, and move back only before them."""

from datetime import UTC, datetime

from jingmin_sim.windows import fixed_window_end, recent_window_end

# 12:00 Beijing on Friday 2026-11-20; the window starts 00:00 Thursday.
FRIDAY_NOON = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def test_a_window_in_the_past_is_kept_as_it_is() -> None:
    for now in (datetime(2026, 11, 21, 4, 1, tzinfo=UTC), datetime(2031, 2, 9, tzinfo=UTC)):
        assert fixed_window_end(FRIDAY_NOON, 1.5, now=now) == FRIDAY_NOON


def test_a_clock_before_the_window_moves_it_back_whole_weeks_to_working_days() -> None:
    # 2026-10-01 is National Day; Friday 2026-09-25 is the Mid-Autumn Festival, so the
    # latest Thursday-and-Friday of working days is 2026-09-17/18.
    moved = fixed_window_end(FRIDAY_NOON, 1.5, now=datetime(2026, 10, 1, 6, 0, tzinfo=UTC))
    assert moved == datetime(2026, 9, 18, 4, 0, tzinfo=UTC)
    # Hours after the window: closer than the one-day margin, so the week before.
    evening = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
    week_before = datetime(2026, 11, 13, 4, 0, tzinfo=UTC)
    assert fixed_window_end(FRIDAY_NOON, 1.5, now=evening) == week_before


def test_a_recent_window_is_the_latest_week_like_the_reference() -> None:
    # Monday 2026-12-07: the latest Friday noon at least a day back is 2026-12-04.
    now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    assert recent_window_end(FRIDAY_NOON, 7, now=now) == datetime(2026, 12, 4, 4, 0, tzinfo=UTC)
    # From a clock before the reference too; in the week of National Day (2026-10-01 to
    # 10-07, with make-up working days) the window moves back until its days are alike.
    moved = recent_window_end(FRIDAY_NOON, 7, now=datetime(2026, 10, 8, 6, 0, tzinfo=UTC))
    assert moved == datetime(2026, 9, 18, 4, 0, tzinfo=UTC)
