"""Small-cell suppression for figures that leave the bureau (DOMAIN.md §4 guardrail, §5:
n < 5), written once. Inside the bureau (its authenticated JSON API, Prometheus) values stay
with their n; everything published outside (the public daily topic, partners) goes through
`count` and `ratio`, so a cell of 1 to 4 never shows as a value, 0 % or 100 %."""

from __future__ import annotations

from typing import Any

SUPPRESS_BELOW = 5


def small(n: int) -> bool:
    """A count that would single out people: 1 to 4 (0 reveals no one)."""
    return 0 < n < SUPPRESS_BELOW


def count(n: int) -> int | None:
    return None if small(n) else n


def ratio(num: int, den: int) -> dict[str, Any]:
    """Numerator, denominator and rate; the rate (and numerator) are null when the
    denominator is under 5, or the numerator or the rest of the denominator is 1 to 4
    (either would let the small count be worked out from the rate)."""
    hidden = small(num) or small(den - num) or den < SUPPRESS_BELOW
    return {
        "numerator": None if hidden else count(num),
        "denominator": count(den),
        "rate": None if hidden or not den else round(num / den, 4),
    }
