"""The agent knows which offset is due next on each source partition."""

from __future__ import annotations

from faust.types import TP
from jingmin_metrics.stream.gaps import Expected

A, B = TP("intake.case.events.v1", 0), TP("intake.case.events.v1", 1)


def test_a_jump_reports_the_first_offset_skipped() -> None:
    expected = Expected()
    expected.reset({A: 4, B: None})
    assert expected.take(A, 4) is None
    assert expected.take(A, 5) is None
    assert expected.take(A, 8) == 6  # 6 and 7 never arrived
    assert expected.take(A, 9) is None


def test_the_first_record_after_a_seek_must_be_the_one_sought() -> None:
    expected = Expected()
    expected.reset({A: 4})
    # faust misses this one: right after a seek its read offset means "next", not "last".
    assert expected.take(A, 5) == 4


def test_unknown_positions_and_records_read_again_are_no_gap() -> None:
    expected = Expected()
    expected.reset({B: None})
    assert expected.take(B, 17) is None  # no committed offset: nothing to compare with
    assert expected.take(B, 18) is None
    assert expected.take(B, 12) is None  # read again after a seek back
    assert expected.take(B, 19) is None
    expected.reset({A: 3})  # a rebalance forgets what it knew of partitions it lost
    assert expected.take(B, 30) is None
