"""The resident survey's plan, without a platform: who is in a frame, what a wave promises,
and when a run defines one."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from jingmin_sim import model as m
from jingmin_sim.api import Api, DevTokens
from jingmin_sim.engine import Options, Run
from jingmin_sim.geography import build_bureau
from jingmin_sim.people import frame_index, survey_frame
from jingmin_sim.stories import survey_arrivals


def test_a_frame_has_the_models_strata_and_numbers_nobody_owns() -> None:
    frame = survey_frame("s", "330602001", 4000, "府山社区")
    assert frame == survey_frame("s", "330602001", 4000, "府山社区")
    assert frame != survey_frame("other", "330602001", 4000, "府山社区")
    residence = Counter(p.residence for p in frame)
    assert abs(residence["non_local"] / len(frame) - m.PARTY_SHARES["non_local"]) < 0.03
    old = Counter(p.age_band for p in frame if p.residence == "local")["60+"]
    assert abs(old / residence["local"] - 0.30) < 0.03
    assert all(p.phone.startswith("13800") and len(p.phone) == 11 for p in frame)
    assert [frame_index(p.phone) for p in frame] == list(range(len(frame)))
    assert frame_index("13812345678") is None


def test_the_waves_precision_follows_what_the_stations_can_work() -> None:
    assert m.survey_precision(30) == 0.20  # a day and a half: the widest margin offered
    assert m.survey_precision(140) == 0.12  # a week
    assert m.survey_precision(600) == 0.06  # a month
    assert m.survey_precision(10_000) == 0.05


def _run(days: float, include: frozenset[str] | None = None) -> Run:
    end = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
    options = Options(seed="s", start=end - timedelta(days=days), end=end)
    if include is not None:
        options.include = include
    bureaus = [build_bureau(code, 2, "s") for code in ("330602", "331127")]
    return Run(Api({}, DevTokens(None), seed="s"), bureaus, options)


def test_a_wave_per_bureau_in_a_window_of_a_day_or_more() -> None:
    starts = survey_arrivals(_run(1.5))
    assert [s.key for s in starts] == ["survey/330602/2026-11-19", "survey/331127/2026-11-19"]
    assert all(s.at.astimezone(m.TZ).hour >= 8 for s in starts)
    assert survey_arrivals(_run(0.5)) == []
    assert survey_arrivals(_run(3, frozenset({"cases", "visits"}))) == []
