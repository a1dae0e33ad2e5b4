"""The intake service as the platform sees it (entry point `jingmin.services`)."""

from __future__ import annotations

from pathlib import Path

from eventkit.service import ServiceSpec, TopicSpec

from jingmin_intake.integration import hotline
from jingmin_intake.integration.messages import (
    DEAD_LETTER_TOPIC,
    EVENT_TYPES,
    TOPIC,
    TYPES_BY_TOPIC,
    UNIT_TOPIC,
    to_messages,
)

SERVICE = ServiceSpec(
    name="intake",
    default_port=8101,
    database="jingmin_intake",
    app="jingmin_intake.entrypoints.app:create_app",
    migrations=Path(__file__).parent / "migrations",
    topics=(
        # 12 partitions: keyed by case id, so a county's load spreads; room for 12 consumers.
        TopicSpec(TOPIC, partitions=12, description="Every intake case event, keyed by case id."),
        TopicSpec(
            UNIT_TOPIC,
            partitions=12,
            description="The unit register: stations and beats registered, renamed, retired;"
            " keyed by unit code.",
        ),
        TopicSpec(
            hotline.TOPIC,
            partitions=12,
            retention_ms=400 * 24 * 3600 * 1000,
            description="For the 12345 hotline: status changes of cases transferred to it or"
            " received from it (category, times, status; no personal data, no officer ids).",
        ),
        TopicSpec(
            DEAD_LETTER_TOPIC,
            partitions=1,
            description="Messages intake consumers could not apply, with the reason.",
        ),
    ),
    to_messages=to_messages,
    workers=(
        "jingmin_intake.application.sweeper:run",
        # Opens a `field` case for each issue raised during a visit (visits.visit.events.v1).
        "jingmin_intake.application.visits_consumer:run",
    ),
    dead_letter_topic=DEAD_LETTER_TOPIC,
    event_types=EVENT_TYPES,
    types_by_topic=TYPES_BY_TOPIC,
)
