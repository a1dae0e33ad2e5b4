"""The intake service as the platform sees it (entry point `jingmin.services`)."""

from __future__ import annotations

from pathlib import Path

from eventkit.service import ServiceSpec, TopicSpec

from jingmin_intake.integration.messages import (
    DEAD_LETTER_TOPIC,
    EVENT_TYPES,
    TOPIC,
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
)
