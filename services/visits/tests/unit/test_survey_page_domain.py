"""The wave's SMS invitations, problems in words and answer links, decided without I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jingmin_visits.domain.errors import IllegalTransition, InvalidCommand
from jingmin_visits.domain.facts import Fact
from jingmin_visits.domain.survey import ANSWER_LINKED, ISSUE_RAISED, Outcome, SurveyWave

NOW = datetime.now(UTC).replace(microsecond=0)
STATION = "330602001"
SEALED = {"ciphertext": "x", "key_id": "k"}


def _apply(wave: SurveyWave, facts: list[Fact]) -> list[Fact]:
    for fact in facts:
        wave.apply(fact)
    return facts


def _wave(modes: tuple[str, ...] = ("sms", "phone")) -> SurveyWave:
    wave = SurveyWave(uuid.uuid4().hex)
    today = NOW.date()
    data: dict[str, Any] = {
        "bureau": "330602", "title": "民意调查",
        "period_start": (today - timedelta(days=2)).isoformat(),
        "period_end": (today + timedelta(days=2)).isoformat(),
        "questionnaire_version": "2026.1", "precision": 0.2, "station_precision": {},
        "confidence": 0.95, "expected_response_rate": 1.0, "modes": list(modes),
    }  # fmt: skip
    _apply(wave, wave.define(data, NOW, NOW))
    units = [
        {"unit_id": uuid.uuid4().hex, "subject_id": f"sub_person{i:04d}", "age_band": "60+",
         "sex": "male", "residence": "local"}
        for i in range(6)
    ]  # fmt: skip
    _apply(wave, wave.import_frame(STATION, 1, units, NOW, NOW))
    _apply(wave, wave.draw(STATION, 1, {"sub_person0000"}, NOW, NOW))
    return wave


def _complete(wave: SurveyWave, unit_id: str, **kw: Any) -> list[Fact]:
    answers = {"security": "safe", "satisfaction": "satisfied"}
    return wave.record_attempt(
        unit_id, "phone", Outcome.COMPLETED, answers, None, NOW, NOW, opted_out=False, **kw
    )


def test_an_invitation_is_sent_once_while_its_link_is_valid() -> None:
    wave = _wave()
    unit = next(u for u in wave.units.values() if not u.do_not_contact)
    assert wave.invitation_blocker(unit.unit_id, NOW, opted_out=True) == "opted_out"
    assert wave.invitation_blocker(unit.unit_id, NOW, opted_out=False) is None
    _apply(wave, wave.invite(unit.unit_id, NOW + timedelta(hours=72), NOW, NOW))
    assert wave.invitation_blocker(unit.unit_id, NOW, opted_out=False) == "already_sent"
    # Once the link has expired, a new invitation may go out (the second one).
    later = NOW + timedelta(hours=73)
    assert wave.invitation_blocker(unit.unit_id, later, opted_out=False) is None
    assert (
        wave.invite(unit.unit_id, later + timedelta(hours=1), NOW, NOW)[0].data["invitation"] == 2
    )
    _apply(wave, _complete(wave, unit.unit_id))
    assert wave.invitation_blocker(unit.unit_id, later, opted_out=False) == "answered"


def test_sms_fieldwork_needs_the_sms_mode_and_daytime() -> None:
    with pytest.raises(IllegalTransition):
        _wave(modes=("phone",)).check_sms_fieldwork(NOW, quiet_hours=False)
    with pytest.raises(IllegalTransition):
        _wave().check_sms_fieldwork(NOW, quiet_hours=True)
    _wave().check_sms_fieldwork(NOW, quiet_hours=False)


def test_a_withdrawn_opt_out_lets_an_attempt_through() -> None:
    wave = _wave()
    blocked = next(u for u in wave.units.values() if u.do_not_contact)
    with pytest.raises(IllegalTransition):
        wave.record_attempt(
            blocked.unit_id, "phone", Outcome.NON_CONTACT, {}, None, NOW, NOW
        )  # as at the draw
    facts = wave.record_attempt(
        blocked.unit_id, "phone", Outcome.NON_CONTACT, {}, None, NOW, NOW, opted_out=False
    )
    assert facts[0].data["outcome"] == "non_contact"


def test_a_problem_in_words_raises_one_issue_with_a_derived_id_and_no_person() -> None:
    wave = _wave()
    unit = next(u for u in wave.units.values() if not u.do_not_contact)
    with pytest.raises(InvalidCommand):
        wave.record_attempt(
            unit.unit_id, "phone", Outcome.REFUSED, {}, None, NOW, NOW, opted_out=False,
            problem_text=SEALED,
        )  # fmt: skip
    first = _complete(wave, unit.unit_id, problem_text=SEALED, raised_by="p1", area_type="rural")
    again = _complete(wave, unit.unit_id, problem_text=SEALED, raised_by="p1", area_type="rural")
    assert [f.type for f in first] == ["SurveyAttemptRecorded", ISSUE_RAISED]
    issue = first[1].data
    # Decided twice from the same state: the same id, so intake opens one case.
    assert issue["issue_id"] == again[1].data["issue_id"]
    assert issue["source_type"] == "survey" and issue["source_id"] == wave.wave_id
    assert "subject_id" not in issue and issue["summary"] == SEALED
    assert first[0].data["has_problem_text"] is True


def test_linking_needs_an_answer_and_records_refusals_too() -> None:
    wave = _wave()
    unit = next(u for u in wave.units.values() if not u.do_not_contact)
    kw: dict[str, Any] = {"actor": "cm1", "role": "commander", "reason": SEALED,
                          "occurred_at": NOW, "now": NOW}  # fmt: skip
    with pytest.raises(IllegalTransition):
        wave.link_answer(unit.unit_id, allowed=True, **kw)
    _apply(wave, _complete(wave, unit.unit_id))
    refused = wave.link_answer(unit.unit_id, allowed=False, **kw)
    granted = wave.link_answer(unit.unit_id, allowed=True, **kw)
    assert [f.type for f in refused + granted] == [ANSWER_LINKED, ANSWER_LINKED]
    assert (refused[0].data["result"], granted[0].data["result"]) == ("refused", "granted")
    version = wave.version
    _apply(wave, refused)
    assert wave.units[unit.unit_id].answers["security"] == "safe" and wave.version == version + 1
