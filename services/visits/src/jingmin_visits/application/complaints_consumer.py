"""Consumes the complaints service's topics: callbacks after a concluded complaint, and the
follow-up callback that measures whether a 不满意 was put right (service recovery).

Runs under `IdempotentConsumer` like the intake consumer; the callback id is derived from the
item and the trigger, so a replayed or duplicated message finds its callback already there.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from eventkit.consumer import IdempotentConsumer, consume_until_stopped
from eventkit.envelope import Envelope
from eventkit.worker import WorkerContext

from jingmin_visits.adapters import read_model
from jingmin_visits.application.handlers import decide_on_resolution, policy_cache
from jingmin_visits.application.intake_consumer import contracts_validator
from jingmin_visits.domain.callback import Resolution
from jingmin_visits.domain.vocabulary import Trigger
from jingmin_visits.integration.messages import DEAD_LETTER_TOPIC

log = logging.getLogger(__name__)

CONSUMER_NAME = "visits.callbacks.from-complaints"
GROUP_ID = "visits.callbacks.from-complaints"
COMPLAINTS_TOPICS = ("complaints.complaint.events.v1", "complaints.supervision.events.v1")
RECEIVED = "jingmin.complaints.ComplaintReceived.v1"
CONCLUDED = "jingmin.complaints.ComplaintConcluded.v1"
RECOVERY = "jingmin.supervision.RecoveryFollowUpRequested.v1"


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class ComplaintsHandler:
    def __init__(self) -> None:
        self.policies = policy_cache()

    async def __call__(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        data = envelope.data
        if envelope.type == RECEIVED:
            await read_model.remember_complaint(
                conn, data["complaint_id"], data.get("intake_case_id"), data.get("callback_id")
            )
            return
        if envelope.type == CONCLUDED:
            if data["outcome"] == "withdrawn":
                return  # nobody to ask how the answer landed: the complainant withdrew
            owner, item = await _complainant_of(conn, data["complaint_id"])
            resolution = Resolution(
                case_id=data["complaint_id"],
                bureau=data["bureau"],
                station=data["station"],
                kind="complaint",
                channel=data.get("channel", ""),
                category=data.get("category"),
                subject_id=data.get("subject_id"),
                resolved_at=_time(data["occurred_at"]),
                trigger=Trigger.COMPLAINT_CONCLUDED,
                contact_owner=owner,
                contact_item=item,
            )
        elif envelope.type == RECOVERY:
            followed = data.get("callback_id", "")
            # The first callback's trigger says whose item (and whose contact) it was.
            owner = "complaints" if followed.endswith(Trigger.COMPLAINT_CONCLUDED) else "intake"
            known = await read_model.case_facts(conn, data["case_id"])
            resolution = Resolution(
                case_id=data["case_id"],
                bureau=data["bureau"],
                station=data["station"],
                kind=known.get("kind", "recovery"),
                channel=known.get("channel", ""),
                # The original case's category, so a suppressed kind of matter stays so.
                category=known.get("category"),
                subject_id=data.get("subject_id") or known.get("subject_id"),
                resolved_at=_time(data["occurred_at"]),
                trigger=Trigger.SERVICE_RECOVERY,
                contact_owner=owner,
            )
        else:
            return  # other complaint and supervision facts schedule nothing here
        policy = await self.policies.get(conn, resolution.bureau)
        metadata: dict[str, Any] = {
            "actor": "system:complaints-consumer",
            "causation_id": envelope.id,
            "correlation_id": envelope.correlationid,
            "traceparent": envelope.traceparent,
        }
        await decide_on_resolution(conn, resolution, policy, metadata, datetime.now(UTC))


async def _complainant_of(conn: asyncpg.Connection, complaint_id: str) -> tuple[str, str]:
    """Who lends the complainant's contact: a complaint filed directly holds it; one opened
    from an intake case or from a callback borrows it from where it came from."""
    origin = await read_model.complaint_origin(conn, complaint_id)
    if origin.get("intake_case_id"):
        return "intake", origin["intake_case_id"]
    if origin.get("callback_id"):
        row = await conn.fetchrow(
            """SELECT data->>'contact_owner' AS owner, data->>'contact_item' AS item, case_id
               FROM events e JOIN callbacks c ON c.callback_id = e.stream_id
               WHERE e.stream_id = $1 AND e.version = 1""",
            origin["callback_id"],
        )
        if row is not None:
            return row["owner"] or "intake", row["item"] or row["case_id"]
    return "complaints", complaint_id


def build_consumer(
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    *,
    name: str = CONSUMER_NAME,
    handler: ComplaintsHandler | None = None,
    **options: Any,
) -> IdempotentConsumer:
    return IdempotentConsumer(
        pool,
        name=name,
        service="visits",
        handler=handler or ComplaintsHandler(),
        producer=producer,
        dead_letter_topic=DEAD_LETTER_TOPIC,
        **{"validate": contracts_validator(), **options},
    )


async def run(ctx: WorkerContext, restart_delay: float = 5.0) -> None:
    """Consume the complaints topics until stopped."""

    async def session() -> None:
        await consume_until_stopped(
            ctx.settings,
            ctx.stop,
            group_id=GROUP_ID,
            topics=COMPLAINTS_TOPICS,
            build=lambda producer: build_consumer(ctx.pool, producer),
        )

    await ctx.repeat(session, restart_delay, "complaints consumer")
