"""Consumes intake and visits events: complaints and service-recovery orders they open.

- `jingmin.intake.CaseReceived.v1` of kind `complaint` opens one complaint, with the case's
  id as the complaint's id (the complainant's details stay in intake's vault).
- `jingmin.visits.CallbackScheduled.v1` is remembered, so an answer can name its person.
- `jingmin.visits.CallbackAnswered.v1` with `wants_complaint` opens a complaint; with
  `satisfaction = dissatisfied` it opens a service-recovery order, "rectify and report back
  within 5 working days", for the station that handled the item.

Runs under `IdempotentConsumer`: the (consumer, ce_id) row and the items' chained events
commit in one transaction. The ids are derived from the trigger as well, so a replay read by
a fresh consumer (another name, an emptied tracking table) still opens nothing twice.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from eventkit.chain import ChainedTransaction, chain_key
from eventkit.consumer import IdempotentConsumer, Validator, consume_until_stopped
from eventkit.contracts import SchemaRegistry
from eventkit.envelope import Envelope
from eventkit.personal import Vault
from eventkit.worker import WorkerContext

from jingmin_complaints.adapters import read_model
from jingmin_complaints.application.handlers import derived_id, policy_cache, write
from jingmin_complaints.application.receipts import new_receipt, receipt_hash
from jingmin_complaints.domain.complaint import Complaint
from jingmin_complaints.domain.supervision import Order
from jingmin_complaints.domain.units import level_of, next_level, station_of, unit_at
from jingmin_complaints.domain.vocabulary import Category, Channel, ItemType, Level, OrderType
from jingmin_complaints.integration.messages import CALLBACK_TOPIC, DEAD_LETTER_TOPIC, INTAKE_TOPIC

log = logging.getLogger(__name__)

CONSUMER_NAME = "complaints.from-intake-and-visits"
GROUP_ID = "complaints"
CASE_RECEIVED = "jingmin.intake.CaseReceived.v1"
CALLBACK_SCHEDULED = "jingmin.visits.CallbackScheduled.v1"
CALLBACK_ANSWERED = "jingmin.visits.CallbackAnswered.v1"
COMPLAINT_KIND = "complaint"
# Callback ids are cb-<item id>-<trigger> (contracts/visits).
_CALLBACK_ID = re.compile(r"^cb-(?P<item>[0-9a-f]{32})-(?P<trigger>[a-z_]{1,32})$")


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class SourceHandler:
    """Applies one intake or visits message inside the consumer's transaction."""

    def __init__(
        self,
        key: bytes,
        vault: Vault,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.key = key
        self.vault = vault
        self.clock = clock
        self.policies = policy_cache()

    async def __call__(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        data = dict(envelope.data)
        metadata = {
            "actor": "system:complaints-consumer",
            "causation_id": envelope.id,
            "correlation_id": envelope.correlationid,
            "traceparent": envelope.traceparent,
        }
        tx = ChainedTransaction(conn, self.key)
        if envelope.type == CASE_RECEIVED and data.get("party_category"):
            # Remembered for every case: a later complaint about it, or from its callback's
            # survey, carries the party category (equity figures).
            await read_model.remember_party(conn, data["case_id"], data["party_category"])
        if envelope.type == CASE_RECEIVED and data.get("kind") == COMPLAINT_KIND:
            await self._complaint_from_case(tx, data, metadata)
        elif envelope.type == CALLBACK_SCHEDULED:
            await read_model.remember_callback(conn, data)
        elif envelope.type == CALLBACK_ANSWERED:
            await self._from_answer(tx, data, metadata)
        # Every other intake or visits event carries nothing complaints act on.

    async def _open_complaint(
        self,
        tx: ChainedTransaction,
        complaint_id: str,
        fields: dict[str, Any],
        occurred_at: datetime,
        metadata: Mapping[str, Any],
    ) -> bool:
        if await tx.load(complaint_id):
            return False  # opened before: a replay, or the same trigger seen again
        complaint = Complaint(complaint_id)
        policy = await self.policies.get(tx.connection, fields["bureau"])
        subject_id = fields.get("subject_id")
        if subject_id:
            # The code is sealed under the complainant, so staff can tell it to them later.
            code = new_receipt()
            fields["receipt_hash"] = receipt_hash(code)
            sealed = await self.vault.encrypt_fields(tx.connection, subject_id, {"receipt": code})
            fields.update(sealed)
        facts = complaint.receive(fields, policy, occurred_at, self.clock())
        await write(tx, complaint, facts, metadata, self.clock())
        return True

    async def _complaint_from_case(
        self, tx: ChainedTransaction, data: dict[str, Any], metadata: Mapping[str, Any]
    ) -> None:
        unit = data["station"]
        category = data.get("category")
        fields: dict[str, Any] = {
            "bureau": data["bureau"],
            "station": station_of(unit),
            "subject_unit": unit,
            "channel": data["channel"] if data["channel"] in set(Channel) else Channel.FIELD,
            "category": category if category in set(Category) else Category.OTHER,
            "level": level_of(unit),
            "anonymous": False,
            "intake_case_id": data["case_id"],
            "received_by": "system:intake",
        }
        if data.get("subject_id"):
            fields["subject_id"] = data["subject_id"]
        if data.get("party_category"):
            fields["party_category"] = data["party_category"]
        # The complaint keeps the case's id: whoever holds one can find the other.
        await self._open_complaint(
            tx, data["case_id"], fields, _time(data["occurred_at"]), metadata
        )

    async def _from_answer(
        self, tx: ChainedTransaction, data: dict[str, Any], metadata: Mapping[str, Any]
    ) -> None:
        callback_id = data["callback_id"]
        seen = await read_model.callback_seen(tx.connection, callback_id) or {}
        parsed = _CALLBACK_ID.match(callback_id)
        case_id = data.get("case_id") or seen.get("case_id") or (parsed and parsed["item"])
        trigger = data.get("trigger") or seen.get("trigger") or (parsed and parsed["trigger"])
        subject_id = seen.get("subject_id")
        answered_at = _time(data["occurred_at"])
        if data.get("wants_complaint"):
            category = data.get("complaint_category")
            fields: dict[str, Any] = {
                "bureau": data["bureau"],
                "station": data["station"],
                "subject_unit": data["station"],
                "channel": Channel.CALLBACK,
                "category": category if category in set(Category) else Category.OTHER,
                "level": level_of(data["station"]),
                "anonymous": False,
                "callback_id": callback_id,
                "received_by": "system:visits",
            }
            if case_id:
                fields["related_case_id"] = case_id
            party = await read_model.party_of(tx.connection, str(case_id) if case_id else None)
            if party:
                fields["party_category"] = party
            if subject_id:
                fields["subject_id"] = subject_id
            complaint_id = derived_id("callback-complaint", callback_id)
            await self._open_complaint(tx, complaint_id, fields, answered_at, metadata)
        if data.get("satisfaction") == "dissatisfied":
            await self._recovery_order(
                tx, data, str(case_id) if case_id else None, trigger, subject_id, metadata
            )

    async def _recovery_order(
        self,
        tx: ChainedTransaction,
        data: dict[str, Any],
        case_id: str | None,
        trigger: str | None,
        subject_id: str | None,
        metadata: Mapping[str, Any],
    ) -> None:
        callback_id = data["callback_id"]
        order_id = derived_id("service-recovery", callback_id)
        if await tx.load(order_id):
            return
        station = data["station"]
        level = level_of(station)
        if trigger == "service_recovery":
            # A 不满意 answer to the follow-up itself: the station's recovery did not work,
            # so the next one is owned a level up.
            level = next_level(level) or level
        answered_at = _time(data["occurred_at"])
        policy = await self.policies.get(tx.connection, data["bureau"])
        item_type = ItemType.COMPLAINT if trigger == "complaint_concluded" else ItemType.CASE
        fields: dict[str, Any] = {
            "bureau": data["bureau"],
            "station": station,
            "owner_unit": station if level == Level.STATION else unit_at(level, station),
            "level": level,
            "order_type": OrderType.SERVICE_RECOVERY,
            "item_type": item_type if case_id else ItemType.CALLBACK,
            "item_id": case_id or callback_id,
            "callback_id": callback_id,
            "issued_by": "system:visits",
        }
        if case_id:
            fields["case_id"] = case_id
        if subject_id:
            fields["subject_id"] = subject_id
        order = Order(order_id)
        facts = order.issue(fields, policy.recovery_due(answered_at), answered_at, self.clock())
        await write(tx, order, facts, metadata, self.clock())


def source_validator() -> Validator | None:
    """Validate intake and visits messages against contracts/ when the schemas are at hand."""
    try:
        registry = SchemaRegistry.load()
    except FileNotFoundError:
        log.warning("no contracts/ directory found; incoming messages are not validated")
        return None
    return registry.validate


def build_consumer(
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    handler: SourceHandler,
    *,
    name: str = CONSUMER_NAME,
    validate: Validator | None = None,
    **options: Any,
) -> IdempotentConsumer:
    return IdempotentConsumer(
        pool,
        name=name,
        service="complaints",
        handler=handler,
        producer=producer,
        dead_letter_topic=DEAD_LETTER_TOPIC,
        validate=validate or source_validator(),
        **options,
    )


async def run(ctx: WorkerContext, restart_delay: float = 5.0) -> None:
    """Consume both topics until stopped; broker trouble restarts the session, not the process."""
    handler = SourceHandler(chain_key(ctx.settings), Vault(ctx.pool, ctx.settings))

    async def session() -> None:
        await consume_until_stopped(
            ctx.settings,
            ctx.stop,
            group_id=GROUP_ID,
            topics=(INTAKE_TOPIC, CALLBACK_TOPIC),
            build=lambda producer: build_consumer(ctx.pool, producer, handler),
        )

    await ctx.repeat(session, restart_delay, "complaints consumer")
