"""Survey arithmetic checked against hand computations: sample size, the draw, AAPOR, weights."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from jingmin_visits.domain.errors import IllegalTransition, InvalidCommand
from jingmin_visits.domain.estimates import (
    Dispositions,
    Group,
    aapor,
    proportion,
    rake,
    wave_estimates,
)
from jingmin_visits.domain.survey import (
    Outcome,
    SurveyWave,
    draw_sample,
    sample_size,
)

Z95 = 1.959963984540054
NOW = datetime.now(UTC)
TODAY = NOW.date()


# ---- sample size ------------------------------------------------------------------------


def test_sample_size_follows_the_formula_with_fpc_and_response_rate() -> None:
    # n0 = z²·0.25/e² = 1.959964² · 0.25 / 0.0025 = 384.1459
    size = sample_size(10_000, 0.05, 0.95, 0.5)
    n0 = Z95**2 * 0.25 / 0.05**2
    assert size.n0 == pytest.approx(n0) == pytest.approx(384.1459, abs=1e-4)
    n_fpc = n0 / (1 + (n0 - 1) / 10_000)  # 384.1459 / 1.0383146 = 369.97
    assert size.n_fpc == pytest.approx(n_fpc) == pytest.approx(369.97, abs=0.01)
    assert size.n == math.ceil(n_fpc / 0.5) == 740


def test_a_small_frame_needs_most_of_itself_and_never_more_than_all() -> None:
    assert sample_size(200, 0.05, 0.95, 1.0).n == 132  # 384.15 / (1 + 383.15/200) = 131.7
    assert sample_size(200, 0.05, 0.95, 0.3).n == 200  # 439 wanted, 200 exist
    with pytest.raises(InvalidCommand):
        sample_size(100, 0.7)


# ---- the draw ---------------------------------------------------------------------------


def test_same_seed_same_sample_and_another_seed_another() -> None:
    frame = [f"u{i:04d}" for i in range(1000)]
    first = draw_sample(frame, 50, seed=20261207)
    assert first == draw_sample(list(frame), 50, seed=20261207)
    assert len(set(first)) == 50 and set(first) <= set(frame)
    other = draw_sample(frame, 50, seed=20261208)
    assert set(other) != set(first)
    assert draw_sample(frame, 2000, seed=1) != frame  # all units, in random order
    assert sorted(draw_sample(frame, 2000, seed=1)) == frame


def test_the_draw_is_the_same_on_every_python() -> None:
    # Recorded on CPython 3.11.7 and 3.13.0: a draw made today can be re-made in years.
    frame = [f"u{i}" for i in range(1000)]
    assert draw_sample(frame, 8, 20261207) == [
        "u762", "u55", "u879", "u217", "u454", "u787", "u982", "u968",
    ]  # fmt: skip


def test_the_draw_is_pinned_to_the_documented_algorithm() -> None:
    # random.Random(7).random() per unit, smallest keys first: stable across Pythons.
    import random

    rng = random.Random(7)
    keys = sorted((rng.random(), i) for i in range(10))
    assert draw_sample([str(i) for i in range(10)], 3, 7) == [str(i) for _, i in keys[:3]]


# ---- AAPOR ------------------------------------------------------------------------------


def test_rr1_and_rr3_against_a_hand_computation() -> None:
    outcomes = (
        [Outcome.COMPLETED] * 40
        + [Outcome.PARTIAL] * 5
        + [Outcome.REFUSED] * 15
        + [Outcome.NON_CONTACT] * 20
        + [Outcome.INELIGIBLE] * 10
        + [Outcome.UNKNOWN_ELIGIBILITY] * 30
    )
    d = Dispositions.of(outcomes)
    rates = aapor(d)
    # RR1 = I / (I + P + R + NC + O + U) = 40 / (40 + 5 + 15 + 20 + 0 + 30) = 40/110
    assert rates.rr1 == pytest.approx(40 / 110)
    # e = (I + P + R + NC + O) / (that + NE) = 80 / 90
    assert rates.e == pytest.approx(80 / 90)
    # RR3 = I / (I + P + R + NC + O + e·U) = 40 / (80 + 80/90 · 30) = 40 / 106.667
    assert rates.rr3 == pytest.approx(40 / (80 + 80 / 90 * 30))
    assert rates.rr3 == pytest.approx(0.375)


def test_rates_are_undefined_rather_than_divided_by_zero() -> None:
    assert aapor(Dispositions()).rr1 is None
    assert aapor(Dispositions(unknown_eligibility=3)).rr3 is None


# ---- weights and intervals --------------------------------------------------------------


def test_unweighted_interval_is_the_textbook_one() -> None:
    y = np.array([1.0] * 30 + [0.0] * 10)
    est = proportion([Group(y, np.ones(40), np.ones((40, 1)))])
    # p = 0.75, v = p(1-p)/(n-1) = 0.1875/39
    se = math.sqrt(0.75 * 0.25 / 39)
    assert est.p == pytest.approx(0.75) and est.se == pytest.approx(se)
    assert est.low == pytest.approx(0.75 - Z95 * se) and est.high == pytest.approx(0.75 + Z95 * se)


def test_post_stratified_interval_with_two_strata_by_hand() -> None:
    # Population: 600 local, 400 non-local. Respondents: 40 local (p=0.9), 10 non-local (0.4).
    rows = [{"residence": "local"}] * 40 + [{"residence": "non_local"}] * 10
    weights = rake(rows, {"residence": {"local": 600, "non_local": 400}})
    assert weights.dimensions == ("residence",) and weights.converged
    assert weights.w[:40] == pytest.approx(np.full(40, 15.0))
    assert weights.w[40:] == pytest.approx(np.full(10, 40.0))
    y = np.array([1.0] * 36 + [0.0] * 4 + [1.0] * 4 + [0.0] * 6)
    est = proportion([Group(y, weights.w, weights.design)])
    # p = (600·0.9 + 400·0.4) / 1000 = 0.70
    assert est.p == pytest.approx(0.70)
    # v = n/(n-1) · Σ N_h² p_h(1-p_h)/n_h / N²
    v = 50 / 49 * (600**2 * 0.9 * 0.1 / 40 + 400**2 * 0.4 * 0.6 / 10) / 1000**2
    assert est.se == pytest.approx(math.sqrt(v))
    assert est.low == pytest.approx(0.70 - Z95 * math.sqrt(v))
    unweighted = proportion([Group(y, np.ones(50), np.ones((50, 1)))])
    assert unweighted.p == pytest.approx(40 / 50)


def test_raking_matches_every_margin() -> None:
    rng = np.random.default_rng(3)
    rows = [
        {"sex": str(rng.choice(["male", "female"])), "age_band": str(rng.choice(["18-29", "60+"]))}
        for _ in range(200)
    ]
    population = {"sex": {"female": 520, "male": 480}, "age_band": {"18-29": 300, "60+": 700}}
    weights = rake(rows, population)
    assert weights.converged and weights.dimensions == ("sex", "age_band")
    for dim, counts in population.items():
        for category, total in counts.items():
            got = sum(w for w, r in zip(weights.w, rows, strict=True) if r[dim] == category)
            assert got == pytest.approx(total)


def test_a_margin_without_respondents_in_a_category_is_left_out_and_said_so() -> None:
    rows = [{"sex": "male", "residence": "local"}, {"sex": "female", "residence": "local"}]
    population = {"sex": {"male": 5, "female": 5}, "residence": {"local": 6, "non_local": 4}}
    weights = rake(rows, population)
    assert weights.dimensions == ("sex",) and weights.dropped == ("residence",)


# ---- the aggregate end to end, without I/O ----------------------------------------------


def _wave() -> SurveyWave:
    wave = SurveyWave(uuid.uuid4().hex)
    data: dict[str, Any] = {
        "bureau": "330602",
        "title": "2026年第四季度群众安全感满意度调查",
        "period_start": (TODAY - timedelta(days=3)).isoformat(),
        "period_end": (TODAY + timedelta(days=30)).isoformat(),
        "questionnaire_version": "2026.1",
        "precision": 0.1,
        "station_precision": {},
        "confidence": 0.95,
        "expected_response_rate": 0.5,
        "modes": ["phone", "in_person"],
    }
    for fact in wave.define(data, NOW, NOW):
        wave.apply(fact)
    return wave


def _units(n_local: int, n_other: int) -> list[dict[str, Any]]:
    return [
        {
            "unit_id": uuid.uuid4().hex,
            "subject_id": f"sub_{i}",
            "age_band": "30-44",
            "sex": "female" if i % 2 else "male",
            "residence": "local" if i < n_local else "non_local",
        }
        for i in range(n_local + n_other)
    ]


def test_over_represented_locals_are_weighted_back_to_the_frame() -> None:
    wave = _wave()
    station = "330602001"
    for fact in wave.import_frame(station, 1, _units(100, 100), NOW, NOW):
        wave.apply(fact)
    for fact in wave.draw(station, 42, {"sub_3"}, NOW, NOW):
        wave.apply(fact)
    drawn = wave.draws[station]
    assert drawn.sample_size == sample_size(200, 0.1, 0.95, 0.5).n == 131
    blocked = [u for u in wave.units.values() if u.do_not_contact]
    # Locals answer readily and are mostly satisfied; few non-locals answer, and fewer of
    # them are satisfied. The frame is half local, the respondents mostly local.
    answered = {"local": 0, "non_local": 0}
    yes = {"local": 0, "non_local": 0}
    for u in wave.units.values():
        if u.do_not_contact:
            continue
        group = u.strata["residence"]
        if group == "non_local" and answered[group] >= 12:
            outcome, answers = Outcome.NON_CONTACT, {}
        else:
            satisfied = answered[group] % (10 if group == "local" else 3) != 0
            answered[group] += 1
            yes[group] += satisfied
            answers = {
                "satisfaction": "satisfied" if satisfied else "dissatisfied",
                "security": "safe",
            }
            outcome = Outcome.COMPLETED
        for fact in wave.record_attempt(u.unit_id, "phone", outcome, answers, None, NOW, NOW):
            wave.apply(fact)
    est = wave_estimates(wave)
    block = est["stations"][0]
    raw = block["satisfaction"]["unweighted"]["p"]
    weighted = block["satisfaction"]["weighted"]["p"]
    # What the frame's mix implies: each group's rate at its frame share (half and half).
    target = 0.5 * yes["local"] / answered["local"] + 0.5 * yes["non_local"] / 12
    assert raw == pytest.approx(sum(yes.values()) / sum(answered.values()))
    assert abs(weighted - target) < 0.01 < abs(raw - target)
    assert block["weighting"]["dimensions"] == ["age_band", "sex", "residence"]
    low, high = block["satisfaction"]["weighted"]["low"], block["satisfaction"]["weighted"]["high"]
    assert low < weighted < high
    # Fewer effective respondents carry the weighted figure: its interval is wider.
    unweighted = block["satisfaction"]["unweighted"]
    assert high - low > unweighted["high"] - unweighted["low"]
    assert est["county"]["satisfaction"]["weighted"]["p"] == pytest.approx(weighted)
    # An opted-out unit is never contacted and counts as a refusal.
    if blocked:
        assert block["dispositions"]["refused"] == len(blocked)
        with pytest.raises(IllegalTransition):
            wave.record_attempt(blocked[0].unit_id, "phone", Outcome.REFUSED, {}, None, NOW, NOW)


def test_a_frame_in_parts_is_one_frame_and_part_one_starts_afresh() -> None:
    wave = _wave()
    station = "330602001"
    history = []
    first, second = _units(6, 0), _units(0, 4)
    for part, units in ((1, first), (2, second)):
        for fact in wave.import_frame(station, part, units, NOW, NOW):
            wave.apply(fact)
            history.append(fact)
            assert fact.data["frame_size"] == len(first) + (len(second) if part == 2 else 0)
    assert [u.unit_id for u in wave.frames[station]] == [u["unit_id"] for u in first + second]
    assert wave.frame_margins[station]["residence"] == {"local": 6, "non_local": 4}
    with pytest.raises(IllegalTransition):  # part 2 again: a retry must not count twice
        wave.import_frame(station, 2, second, NOW, NOW)
    for fact in wave.draw(station, 99, (), NOW, NOW):
        wave.apply(fact)
        history.append(fact)
    # Rebuilt from its facts, the frame and the sample are the same.
    rebuilt = SurveyWave.from_history(
        wave.wave_id, [(f.type, f.data, f.occurred_at) for f in history]
    )
    assert [u.unit_id for u in rebuilt.frames[station]] == [u.unit_id for u in wave.frames[station]]
    assert rebuilt.draws[station] == wave.draws[station]
    fresh = _wave()
    for fact in fresh.import_frame(station, 1, first, NOW, NOW):
        fresh.apply(fact)
    for fact in fresh.import_frame(station, 1, second, NOW, NOW):  # part 1 again: afresh
        fresh.apply(fact)
    assert len(fresh.frames[station]) == 4 and fresh.frame_parts[station] == 1


def test_a_drawn_frame_is_frozen_and_attempts_respect_the_wave() -> None:
    wave = _wave()
    station = "330602001"
    for fact in wave.import_frame(station, 1, _units(10, 10), NOW, NOW):
        wave.apply(fact)
    for fact in wave.draw(station, 1, (), NOW, NOW):
        wave.apply(fact)
    with pytest.raises(IllegalTransition):
        wave.import_frame(station, 1, _units(5, 5), NOW, NOW)
    with pytest.raises(IllegalTransition):
        wave.draw(station, 2, (), NOW, NOW)
    unit = next(iter(wave.units))
    with pytest.raises(InvalidCommand):  # sms is not one of this wave's modes
        wave.record_attempt(unit, "sms", Outcome.NON_CONTACT, {}, None, NOW, NOW)
    with pytest.raises(InvalidCommand):  # a completed interview answers both headline items
        wave.record_attempt(unit, "phone", Outcome.COMPLETED, {"security": "safe"}, None, NOW, NOW)
    with pytest.raises(InvalidCommand):  # a refusal carries no answers
        wave.record_attempt(unit, "phone", Outcome.REFUSED, {"security": "safe"}, None, NOW, NOW)
    with pytest.raises(InvalidCommand, match="quiet hours"):
        wave.record_attempt(
            unit, "phone", Outcome.NON_CONTACT, {}, None, NOW, NOW, quiet_hours=True
        )
    in_person = wave.record_attempt(
        unit, "in_person", Outcome.NON_CONTACT, {}, None, NOW, NOW, quiet_hours=True
    )
    assert in_person[0].data["mode"] == "in_person"
    late = datetime.combine(TODAY + timedelta(days=40), datetime.min.time(), UTC)
    with pytest.raises(InvalidCommand):
        wave.record_attempt(unit, "phone", Outcome.NON_CONTACT, {}, None, late, late)
    with pytest.raises(InvalidCommand):
        wave.import_frame("330603001", 1, _units(1, 1), NOW, NOW)
