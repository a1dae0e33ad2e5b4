"""Small cells never leave the bureau as a value: the one rule the public topic uses."""

from __future__ import annotations

from jingmin_metrics.figures import disclosure


def test_counts_from_one_to_four_are_null_and_zero_or_five_are_shown() -> None:
    assert [disclosure.count(n) for n in range(7)] == [0, None, None, None, None, 5, 6]


def test_a_rate_over_a_small_cell_is_never_zero_or_one_hundred_percent() -> None:
    for den in range(1, 5):
        for num in (0, den):  # 0 % and 100 % of a small denominator
            assert disclosure.ratio(num, den) == {
                "numerator": None,
                "denominator": None,
                "rate": None,
            }


def test_a_rate_that_would_give_a_small_count_away_is_null() -> None:
    # 3 of 40: the numerator is small. 37 of 40: the rest (3) is small.
    for num in (3, 37):
        assert disclosure.ratio(num, 40) == {"numerator": None, "denominator": 40, "rate": None}
    assert disclosure.ratio(0, 40) == {"numerator": 0, "denominator": 40, "rate": 0.0}
    assert disclosure.ratio(40, 40) == {"numerator": 40, "denominator": 40, "rate": 1.0}
    assert disclosure.ratio(6, 11) == {"numerator": 6, "denominator": 11, "rate": 0.5455}
    assert disclosure.ratio(0, 0) == {"numerator": None, "denominator": 0, "rate": None}


def test_the_public_daily_record_uses_the_rule() -> None:
    from jingmin_metrics.figures import public

    assert public.count is disclosure.count and public.ratio is disclosure.ratio
