"""The visits service as the platform sees it (entry point `jingmin.services`)."""

from __future__ import annotations

from pathlib import Path

from eventkit.service import ServiceSpec, TopicSpec

from jingmin_visits.integration.messages import (
    DEAD_LETTER_TOPIC,
    EVENT_TYPES,
    SURVEY_TOPIC,
    TOPIC,
    TYPES_BY_TOPIC,
    VISIT_TOPIC,
    to_messages,
)

SERVICE = ServiceSpec(
    name="visits",
    default_port=8102,
    database="jingmin_visits",
    app="jingmin_visits.entrypoints.app:create_app",
    migrations=Path(__file__).parent / "migrations",
    topics=(
        # 12 partitions, keyed by callback id, like the intake topic it follows.
        TopicSpec(TOPIC, partitions=12, description="Every callback event, keyed by callback id."),
        TopicSpec(
            VISIT_TOPIC,
            partitions=12,
            description="Visits, engagement events and the issues they raise, keyed by the"
            " visit or engagement id; issues named in a survey wave (without the respondent),"
            " keyed by the wave id.",
        ),
        TopicSpec(
            SURVEY_TOPIC,
            partitions=12,
            description="Resident survey waves (民意调查): definitions, frame sizes and margins,"
            " draws with their seeds, SMS invitations, fieldwork attempts and answers without the"
            " unit they came from, and the audit of every request to link an answer to its person;"
            " keyed by wave id.",
        ),
        TopicSpec(
            DEAD_LETTER_TOPIC,
            partitions=1,
            description="Messages visits consumers could not apply, with the reason.",
        ),
    ),
    to_messages=to_messages,
    workers=(
        "jingmin_visits.application.intake_consumer:run",
        "jingmin_visits.application.complaints_consumer:run",
        "jingmin_visits.application.expiry:run",
        "jingmin_visits.application.surveys:run",
    ),
    dead_letter_topic=DEAD_LETTER_TOPIC,
    event_types=EVENT_TYPES,
    types_by_topic=TYPES_BY_TOPIC,
)
