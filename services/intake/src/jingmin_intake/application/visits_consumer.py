"""Consumes visits' visit and engagement events: each issue raised opens one intake case.

Runs under `IdempotentConsumer`: the (consumer, ce_id) row, the case's events, its outbox
rows and its read-model row commit in one transaction, so a message is applied once; the
case id being the issue id makes a second *copy* of an issue (another ce_id, another
consumer group) a no-op as well.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from eventkit import kafka
from eventkit.consumer import IdempotentConsumer, Validator, make_consumer
from eventkit.contracts import SchemaRegistry
from eventkit.envelope import Envelope
from eventkit.personal import Vault
from eventkit.policies import BureauPolicies
from eventkit.settings import KernelSettings
from eventkit.worker import WorkerContext

from jingmin_intake.application.field_cases import open_field_case
from jingmin_intake.domain.policy import DeadlinePolicy
from jingmin_intake.integration.inbound import ISSUE_RAISED, VISITS_TOPIC, IssueRaised
from jingmin_intake.integration.messages import DEAD_LETTER_TOPIC

log = logging.getLogger(__name__)

CONSUMER_NAME = "intake.cases.from-visits"
GROUP_ID = "intake.cases.from-visits"


class UnknownEventType(ValueError):
    """A message of a type no contract declares (dead-lettered)."""


class IssueHandler:
    """Opens the field case of each IssueRaised; every other visits event is not intake's."""

    def __init__(
        self,
        vault: Vault,
        settings: KernelSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.vault = vault
        self.settings = settings
        self.clock = clock
        self.policies = BureauPolicies(DeadlinePolicy)

    async def __call__(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        if envelope.type != ISSUE_RAISED:
            return
        issue = IssueRaised.model_validate(dict(envelope.data))
        metadata = {
            "actor": "system:visits-consumer",
            "causation_id": envelope.id,
            "correlation_id": envelope.correlationid,
            "traceparent": envelope.traceparent,
        }
        opened = await open_field_case(
            conn,
            issue,
            vault=self.vault,
            settings=self.settings,
            policies=self.policies,
            metadata={k: v for k, v in metadata.items() if v},
            now=self.clock(),
        )
        if not opened:
            log.info("issue %s already has its case; nothing to do", issue.issue_id)


def issue_validator(registry: SchemaRegistry | None = None) -> Validator:
    """Refuses (to the DLQ) an IssueRaised intake cannot act on; other types pass through.

    The published schema is checked when contracts/ is at hand, and intake's own reading of
    the contract always, so a deployment without the schema files is no less strict.
    """
    if registry is None:
        try:
            registry = SchemaRegistry.load()
        except FileNotFoundError:
            log.warning("no contracts/ directory found; IssueRaised is checked by intake's model")

    def validate(type_: str, data: Mapping[str, Any]) -> None:
        if type_ != ISSUE_RAISED:
            # Visit and engagement facts carry nothing intake acts on (their payload is not
            # intake's business), but a type nobody declared is a producer's mistake.
            if registry is not None and type_ not in registry:
                raise UnknownEventType(f"{type_} is not a declared event type")
            return
        if registry is not None and ISSUE_RAISED in registry:
            registry.validate(type_, data)
        IssueRaised.model_validate(dict(data))

    return validate


def build_consumer(
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    settings: KernelSettings,
    *,
    name: str = CONSUMER_NAME,
    handler: IssueHandler | None = None,
    validate: Validator | None = None,
    **options: Any,
) -> IdempotentConsumer:
    return IdempotentConsumer(
        pool,
        name=name,
        service="intake",
        handler=handler or IssueHandler(Vault(pool, settings), settings),
        producer=producer,
        dead_letter_topic=DEAD_LETTER_TOPIC,
        validate=validate or issue_validator(),
        **options,
    )


async def run(ctx: WorkerContext, restart_delay: float = 5.0) -> None:
    """Consume visits' events until stopped; broker trouble restarts the loop, not the process."""
    await ctx.repeat(
        lambda: consume(ctx.pool, ctx.settings, ctx.stop), restart_delay, "visits consumer"
    )


async def consume(
    pool: asyncpg.Pool, settings: KernelSettings, stop: asyncio.Event, topic: str = VISITS_TOPIC
) -> None:
    producer = kafka.producer(settings)
    await producer.start()
    try:
        source = make_consumer(settings.kafka_bootstrap_servers, GROUP_ID, topics=[topic])
        await source.start()
        try:
            await build_consumer(pool, producer, settings).run(source, stop)
        finally:
            await source.stop()
    finally:
        await producer.stop()
