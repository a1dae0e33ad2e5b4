"""The resident survey's page and privacy messages are documented and keep persons out."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from eventkit.contracts import SchemaRegistry, SchemaViolation

ROOT = Path(__file__).resolve().parents[2]
SURVEY_TOPIC, VISIT_TOPIC = "visits.survey.events.v1", "visits.visit.events.v1"
BASE = {"wave_id": "a" * 32, "bureau": "330602", "station": "330602001",
        "occurred_at": "2026-12-07T02:00:00+00:00"}  # fmt: skip


def test_asyncapi_lists_the_new_survey_messages_on_their_topics() -> None:
    doc = yaml.safe_load((ROOT / "contracts/visits/asyncapi.yaml").read_text(encoding="utf-8"))
    survey = doc["channels"][SURVEY_TOPIC]["messages"]
    assert {"SurveyInvitationSent.v1", "SurveyAnswerLinked.v1"} <= set(survey)
    assert "IssueRaised.v1" in doc["channels"][VISIT_TOPIC]["messages"]


def test_an_issue_from_a_survey_is_valid_and_names_no_respondent_unit() -> None:
    registry = SchemaRegistry.load(ROOT / "contracts")
    issue = {"issue_id": "c" * 32, "source_type": "survey", "source_id": BASE["wave_id"],
             "bureau": "330602", "station": "330602001", "occurred_at": BASE["occurred_at"],
             "kind": "opinion", "area_type": "urban", "raised_by": "survey-page",
             "programme": "resident_survey", "category": "survey.theft"}  # fmt: skip
    registry.validate("jingmin.visits.IssueRaised.v1", issue)
    with pytest.raises(SchemaViolation):
        registry.validate("jingmin.visits.IssueRaised.v1", {**issue, "unit_id": "b" * 32})


def test_the_audit_of_a_link_carries_no_unit_person_or_reason() -> None:
    registry = SchemaRegistry.load(ROOT / "contracts")
    linked = "jingmin.visits.SurveyAnswerLinked.v1"
    ok = {**BASE, "result": "refused", "requested_by": "330602-cm-01", "role": "commander",
          "disposition": "completed"}  # fmt: skip
    registry.validate(linked, ok)
    for extra in ({"unit_id": "b" * 32}, {"reason": "核实"}, {"subject_id": "sub_abcdefgh"},
                  {"phone": "13700000000"}):  # fmt: skip
        with pytest.raises(SchemaViolation):
            registry.validate(linked, {**ok, **extra})
    sent = "jingmin.visits.SurveyInvitationSent.v1"
    registry.validate(
        sent, {**BASE, "channel": "sms", "link_expires_at": BASE["occurred_at"], "invitation": 1}
    )
    with pytest.raises(SchemaViolation):
        registry.validate(
            sent, {**BASE, "channel": "sms", "link_expires_at": BASE["occurred_at"],
                   "invitation": 1, "unit_id": "b" * 32},
        )  # fmt: skip
