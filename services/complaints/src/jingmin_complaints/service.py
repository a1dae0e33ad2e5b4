"""The complaints service as the platform sees it (entry point `jingmin.services`)."""

from __future__ import annotations

from pathlib import Path

from eventkit.service import ServiceSpec, TopicSpec

from jingmin_complaints.integration.messages import (
    COMPLAINT_TOPIC,
    DEAD_LETTER_TOPIC,
    EVENT_TYPES,
    SUPERVISION_TOPIC,
    TYPES_BY_TOPIC,
    to_messages,
)

SERVICE = ServiceSpec(
    name="complaints",
    default_port=8103,
    database="jingmin_complaints",
    app="jingmin_complaints.entrypoints.app:create_app",
    migrations=Path(__file__).parent / "migrations",
    topics=(
        # 12 partitions, keyed by aggregate id, like the other domain topics.
        TopicSpec(
            COMPLAINT_TOPIC,
            partitions=12,
            description="Every complaint event (投诉), keyed by complaint id.",
        ),
        TopicSpec(
            SUPERVISION_TOPIC,
            partitions=12,
            description="Supervision orders, inspections and accountability actions (督察), "
            "keyed by their id.",
        ),
        TopicSpec(
            DEAD_LETTER_TOPIC,
            partitions=1,
            description="Messages complaints consumers could not apply, with the reason.",
        ),
    ),
    to_messages=to_messages,
    workers=(
        "jingmin_complaints.application.sweeper:run",
        "jingmin_complaints.application.consumers:run",
        "jingmin_complaints.adapters.unit_names:run",
    ),
    dead_letter_topic=DEAD_LETTER_TOPIC,
    event_types=EVENT_TYPES,
    types_by_topic=TYPES_BY_TOPIC,
    hash_chained=True,
)
