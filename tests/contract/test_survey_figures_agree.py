"""The resident survey's figures from the topic equal visits' own estimates (issue 18).

A wave is run through visits' aggregate (no I/O): a frame whose respondents over-represent
locals, an opted-out unit, partial interviews completed later, refusals, non-contacts,
ineligibles and units never reached. Its stored events are published as visits publishes
them (`integration.messages`), checked against the contracts, turned into metrics facts,
item observations and cells, and the metrics JSON's survey group is compared with
GET /v1/survey-waves/{id}/estimates' body (`wave_estimates`): equal, not close.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from eventkit.contracts import SchemaRegistry
from eventkit.store import Position, RecordedEvent
from jingmin_metrics.domain.cells import Cells
from jingmin_metrics.domain.facts import make_fact
from jingmin_metrics.domain.item import add_fact, new_state, observations
from jingmin_metrics.figures.compute import Scope, survey
from jingmin_metrics.figures.select import index
from jingmin_visits.domain.estimates import wave_estimates
from jingmin_visits.domain.facts import Fact
from jingmin_visits.domain.survey import Outcome, SurveyWave
from jingmin_visits.integration import messages

NOW = datetime.now(UTC).replace(microsecond=0)
BUREAU = "330602"
STATIONS = ("330602001", "330602002")


def _units(n: int, station: str) -> list[dict[str, Any]]:
    ages = ("18-29", "30-44", "45-59", "60+")
    return [
        {
            "unit_id": uuid.uuid4().hex,
            "subject_id": f"sub_{station}_{i}",
            "age_band": ages[i % 4],
            "sex": "female" if i % 3 else "male",
            "residence": "local" if i % 5 < 3 else "non_local",
        }
        for i in range(n)
    ]


def _run_wave() -> tuple[SurveyWave, list[tuple[str, dict[str, Any], datetime]]]:
    wave = SurveyWave(uuid.uuid4().hex)
    stored: list[tuple[str, dict[str, Any], datetime]] = []

    def apply(facts: list[Fact]) -> None:
        for f in facts:
            wave.apply(f)
            stored.append((f.type, dict(f.data), f.occurred_at))

    apply(
        wave.define(
            {
                "bureau": BUREAU,
                "title": "2026年第四季度群众安全感满意度调查",
                "period_start": (NOW.date() - timedelta(days=3)).isoformat(),
                "period_end": (NOW.date() + timedelta(days=30)).isoformat(),
                "questionnaire_version": "2026.1",
                "precision": 0.1,
                "station_precision": {},
                "confidence": 0.95,
                "expected_response_rate": 0.5,
                "modes": ["phone", "in_person"],
            },
            NOW,
            NOW,
        )
    )
    for k, station in enumerate(STATIONS):
        units = _units(160 + 40 * k, station)
        # In two parts: the published margins are the whole frame's after each part.
        apply(wave.import_frame(station, 1, units[:100], NOW, NOW))
        apply(wave.import_frame(station, 2, units[100:], NOW, NOW))
        apply(wave.draw(station, 7 + k, {f"sub_{station}_5"}, NOW, NOW))
    for unit in [u for u in wave.units.values() if u.do_not_contact][:1]:
        # An opt-out withdrawn after the draw: the unit is attempted, and its standing
        # refusal gives way to what the attempt found.
        apply(wave.record_attempt(unit.unit_id, "phone", Outcome.NON_CONTACT, {}, None, NOW, NOW,
                                  opted_out=False))  # fmt: skip
    for i, unit in enumerate(u for u in wave.units.values() if not u.do_not_contact):
        local = unit.strata["residence"] == "local"
        sat = ("satisfied", "basically_satisfied", "dissatisfied")[i % (2 if local else 3)]
        sec = ("safe", "not_very_safe", "basically_safe", "unsafe")[i % 4]
        script: list[tuple[Outcome, dict[str, str]]]
        if i % 11 == 0:
            script = [(Outcome.NON_CONTACT, {})]
        elif i % 11 == 1:
            script = [(Outcome.REFUSED, {}), (Outcome.NON_CONTACT, {})]
        elif i % 11 == 2:
            script = [(Outcome.INELIGIBLE, {})]
        elif i % 11 == 3:
            # A partial interview (security only), then the rest: one respondent, merged.
            script = [(Outcome.PARTIAL, {"security": sec}), (Outcome.COMPLETED,
                      {"security": sec, "satisfaction": sat})]  # fmt: skip
        elif i % 11 == 4:
            # Partial, then a refusal: stays a partial respondent with its answers.
            script = [(Outcome.PARTIAL, {"satisfaction": sat}), (Outcome.REFUSED, {})]
        elif i % 11 == 5:
            script = [(Outcome.PARTIAL, {"change": "better"})]  # neither headline item
        elif i % 11 == 6:
            continue  # never attempted: unknown eligibility
        elif not local and i % 2:
            script = [(Outcome.NON_CONTACT, {})]  # non-locals answer less
        else:
            script = [(Outcome.NON_CONTACT, {}), (Outcome.COMPLETED,
                      {"security": sec, "satisfaction": sat})]  # fmt: skip
        for outcome, answers in script:
            apply(wave.record_attempt(unit.unit_id, "phone", outcome, answers, None, NOW, NOW))
    return wave, stored


def _published(wave: SurveyWave, stored: list[tuple[str, dict[str, Any], datetime]]) -> list[
    tuple[int, str, dict[str, Any]]
]:  # fmt: skip
    out = []
    for version, (type_, data, at) in enumerate(stored, start=1):
        event = RecordedEvent(
            wave.wave_id, messages.SURVEY_STREAM, version, uuid.uuid4().hex, type_, 1, BUREAU,
            data, {}, at, at, Position(0, version),
        )  # fmt: skip
        out.append((version, messages.ce_type(type_), messages.public_data(event)))
    return out


def test_metrics_survey_figures_equal_visits_estimates() -> None:
    wave, stored = _run_wave()
    registry = SchemaRegistry.load()
    state = new_state(0)
    for version, ce_type, data in _published(wave, stored):
        registry.validate(ce_type, data)  # what metrics reads is what the contract says
        assert "unit_id" not in data and "subject_id" not in data and "units" not in data
        fact = make_fact(ce_type, data, data["occurred_at"], BUREAU, data.get("station", ""))
        assert fact is not None
        add_fact(state, f"visits:{wave.wave_id}", version, fact)
    cells = Cells()
    cells.apply(observations(state), 1)
    figures = survey(Scope(index(cells.chunks), [BUREAU], None, None))

    want = wave_estimates(wave)
    [got] = figures["waves"]
    assert figures["latest"] == wave.wave_id
    assert got["stations"] == want["stations"]
    assert got["scope"] == want["county"]
    assert (got["wave_id"], got["bureau"], got["confidence"], got["strata"]) == (
        want["wave_id"], want["bureau"], want["confidence"], want["strata"],
    )  # fmt: skip
    attempts = sum(1 for type_, _d, _t in stored if type_ == "SurveyAttemptRecorded")
    assert got["attempts"]["by_mode"] == {"phone": attempts}
    assert sum(got["attempts"]["by_outcome"].values()) == attempts
    for item in ("satisfaction", "security"):
        completed = got["completed_by_answer"][item]
        assert sum(completed.values()) == want["county"]["dispositions"]["completed"], item
    county = want["county"]
    # The wave exercises what it says: every disposition, a weighted estimate that moved.
    assert all(county["dispositions"][k] for k in
               ("completed", "partial", "refused", "non_contact", "ineligible",
                "unknown_eligibility"))  # fmt: skip
    sat = county["satisfaction"]
    assert sat["weighted"]["p"] != sat["unweighted"]["p"]


def test_a_station_scope_states_that_station_alone() -> None:
    wave, stored = _run_wave()
    state = new_state(0)
    for version, ce_type, data in _published(wave, stored):
        fact = make_fact(ce_type, data, data["occurred_at"], BUREAU, data.get("station", ""))
        assert fact is not None
        add_fact(state, f"visits:{wave.wave_id}", version, fact)
    cells = Cells()
    cells.apply(observations(state), 1)
    station = STATIONS[1]
    [got] = survey(Scope(index(cells.chunks), [station], None, None))["waves"]
    want = next(s for s in wave_estimates(wave)["stations"] if s["unit"] == station)
    assert got["stations"] == [want]
    pooled = got["scope"]
    assert (pooled["unit"], pooled["level"]) == (station, "station")
    for key in ("dispositions", "response_rates", "respondents", "satisfaction", "security"):
        assert pooled[key] == want[key], key
