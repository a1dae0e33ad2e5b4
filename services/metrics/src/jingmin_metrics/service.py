"""The metrics service as the platform sees it (entry point `jingmin.services`)."""

from __future__ import annotations

from pathlib import Path

from eventkit.service import ServiceSpec, TopicSpec
from eventkit.store import OutboxMessage, RecordedEvent

DAILY_TOPIC = "metrics.daily.public.v1"
DEAD_LETTER_TOPIC = "metrics.dlq.v1"
DAILY_TYPE = "jingmin.metrics.DailyFigures.v1"


def processor_topics(app_id: str, partitions: int) -> list[TopicSpec]:
    """The metrics processors' own topics for faust app `app_id`: the regroup topic, and the
    lease topic whose partitions faust's consumer group shares out (nothing is written to it:
    a processor given its partition p reads partition p of every source topic)."""
    return [
        TopicSpec(
            f"{app_id}-regrouped", partitions=partitions, description="Callbacks keyed by item."
        ),
        TopicSpec(
            f"{app_id}-leases",
            partitions=partitions,
            description="Empty; its partitions are the processors' shares of the sources.",
        ),
    ]


def to_messages(event: RecordedEvent) -> list[OutboxMessage]:
    """Metrics stores no events of its own: its figures are derived, never the truth."""
    return []


SERVICE = ServiceSpec(
    name="metrics",
    default_port=8104,
    database="jingmin_metrics",
    app="jingmin_metrics.entrypoints.app:create_app",
    migrations=Path(__file__).parent / "migrations",
    topics=(
        TopicSpec(
            DAILY_TOPIC,
            partitions=12,
            compacted=True,
            description="Aggregated figures per bureau and bureau day for other agencies; "
            "cells from 1 to 4 suppressed, no personal data. Keyed by <bureau>/<day>: the "
            "latest record of a key is the day's current revision.",
        ),
    ),
    to_messages=to_messages,
    workers=(
        "jingmin_metrics.stream.runner:run",
        "jingmin_metrics.adapters.daily_publisher:run",
        "jingmin_metrics.adapters.unit_names:run",
    ),
    dead_letter_topic=DEAD_LETTER_TOPIC,
    event_types=(DAILY_TYPE,),
    types_by_topic={DAILY_TOPIC: (DAILY_TYPE,)},
)
