"""Consumes intake case events: remembers what each case is, decides callbacks on resolution,
on an enforcement decision (执法回访) and on a classification as a crime with a victim
(刑事被侵害人回访告知) or a preventable case (可防性案件回访).

Runs under `IdempotentConsumer`: the (consumer, ce_id) row, the per-case facts and the
callback's events commit in one transaction, so each intake message is applied once.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from eventkit.consumer import IdempotentConsumer, Validator, consume_until_stopped
from eventkit.contracts import SchemaRegistry
from eventkit.envelope import Envelope
from eventkit.worker import WorkerContext

from jingmin_visits.adapters import read_model
from jingmin_visits.application.handlers import decide_on_resolution, policy_cache
from jingmin_visits.domain.vocabulary import Trigger
from jingmin_visits.integration.messages import DEAD_LETTER_TOPIC, INTAKE_TOPIC

log = logging.getLogger(__name__)

CONSUMER_NAME = "visits.callbacks.from-intake"
GROUP_ID = "visits.callbacks"
RECEIVED = "jingmin.intake.CaseReceived.v1"
RESOLVED = "jingmin.intake.CaseResolved.v1"
ENFORCEMENT_DECIDED = "jingmin.intake.EnforcementDecided.v1"
CLASSIFIED = "jingmin.intake.CaseClassified.v1"


class UnknownCase(Exception):
    """A resolution, decision or classification for a case whose receipt this service never
    saw (dead-lettered)."""


def triggers_of(envelope: Envelope) -> tuple[Trigger, ...]:
    """The callbacks an enforcement decision or a classification calls for, each its own
    stream (`cb-<case>-<trigger>`), so a redelivery or a restated classification finds it."""
    if envelope.type == ENFORCEMENT_DECIDED:
        return (Trigger.ENFORCEMENT_DECISION,)
    if envelope.type == CLASSIFIED:
        data = envelope.data
        return tuple(
            t
            for t, wanted in (
                (Trigger.CRIME_VICTIM, data["crime_victim"]),
                (Trigger.PREVENTABLE_CASE, data["preventable"]),
            )
            if wanted
        )
    return ()


class IntakeHandler:
    def __init__(self, clock: Any = lambda: datetime.now(UTC)) -> None:
        self.policies = policy_cache()
        self.clock = clock

    async def __call__(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        data = envelope.data
        metadata = {
            "actor": "system:intake-consumer",
            "causation_id": envelope.id,
            "correlation_id": envelope.correlationid,
            "traceparent": envelope.traceparent,
        }
        if envelope.type == RECEIVED:
            await read_model.remember_case(conn, data, _time(data["occurred_at"]))
        elif envelope.type == RESOLVED:
            resolution = await read_model.resolution_of(conn, data, _time(data["occurred_at"]))
            if resolution is None:
                raise UnknownCase(f"case {data['case_id']} was resolved but never received")
            policy = await self.policies.get(conn, resolution.bureau)
            await decide_on_resolution(conn, resolution, policy, metadata, self.clock())
        elif envelope.type in (ENFORCEMENT_DECIDED, CLASSIFIED):
            # The classification's category is remembered even when it calls for no
            # callback: a later resolution of a sexual-offence case stays unsurveyed.
            follow_up = await read_model.follow_up_of(conn, data, _time(data["occurred_at"]))
            if follow_up is None:
                raise UnknownCase(f"case {data['case_id']} was followed up but never received")
            policy = await self.policies.get(conn, follow_up.bureau)
            for trigger in triggers_of(envelope):
                one = replace(follow_up, trigger=trigger)
                await decide_on_resolution(conn, one, policy, metadata, self.clock())
        # Other intake events carry nothing callbacks need yet.


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def contracts_validator() -> Validator | None:
    """Validate consumed messages against contracts/ when the schemas are at hand."""
    try:
        registry = SchemaRegistry.load()
    except FileNotFoundError:
        log.warning("no contracts/ directory found; consumed messages are not validated")
        return None
    return registry.validate


def build_consumer(
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    *,
    name: str = CONSUMER_NAME,
    handler: IntakeHandler | None = None,
    **options: Any,
) -> IdempotentConsumer:
    return IdempotentConsumer(
        pool,
        name=name,
        service="visits",
        handler=handler or IntakeHandler(),
        producer=producer,
        dead_letter_topic=DEAD_LETTER_TOPIC,
        validate=contracts_validator(),
        **options,
    )


async def run(ctx: WorkerContext, restart_delay: float = 5.0) -> None:
    """Consume the intake topic until stopped; broker trouble restarts the loop, not the process."""

    async def session() -> None:
        await consume_until_stopped(
            ctx.settings,
            ctx.stop,
            group_id=GROUP_ID,
            topics=[INTAKE_TOPIC],
            build=lambda producer: build_consumer(ctx.pool, producer),
        )

    await ctx.repeat(session, restart_delay, "intake consumer")
