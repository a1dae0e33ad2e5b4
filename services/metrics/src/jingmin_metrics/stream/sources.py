"""The topics the processors read, and how each record finds its item.

A new stream (complaints, supervision, visits) joins by adding a `Source` here and rules for
its event types in `domain/facts.py`; the faust app subscribes to every source present.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jingmin_metrics.domain.facts import (
    CALLBACK_TOPIC,
    COMPLAINT_TOPIC,
    INTAKE_TOPIC,
    SUPERVISION_TOPIC,
    SURVEY_TOPIC,
    VISIT_TOPIC,
    callback_root,
)


@dataclass(frozen=True)
class Source:
    topic: str
    # The item a record belongs to, from its stream id and body. None: the stream id itself,
    # so the record is already on the item's partition. A function: the record is first
    # regrouped by that item id through an internal topic (a callback joins its case).
    regroup: Callable[[str, Mapping[str, Any]], str] | None = None


SOURCES: tuple[Source, ...] = (
    Source(INTAKE_TOPIC),
    # Complaint ids equal the intake case's id when a complaint came in through intake:
    # both land in one item, on one partition.
    Source(COMPLAINT_TOPIC),
    Source(SUPERVISION_TOPIC),
    Source(VISIT_TOPIC),
    # A survey wave is one item (key = wave id): its figures are functions of all its facts.
    Source(SURVEY_TOPIC),
    Source(CALLBACK_TOPIC, regroup=callback_root),
)
