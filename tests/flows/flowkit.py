"""Helpers the cross-service flow tests share (imported as `flowkit`: pytest puts this
folder on sys.path for the tests in it)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord
from eventkit.kafka import json_bytes, record_headers


class DeadLetters:
    """Stands in for the dead-letter producer; keeps the topics it was asked to send to."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, topic: str, **_: Any) -> Any:
        self.sent.append(topic)

        async def acked() -> None:
            return None

        return acked()


async def published(pool: asyncpg.Pool) -> list[ConsumerRecord[bytes, bytes]]:
    """The outbox rows as the Kafka records the relay would publish, in outbox order."""
    rows = await pool.fetch(
        "SELECT topic, aggregate_id, payload::text AS p, headers::text AS h FROM outbox ORDER BY id"
    )
    records = []
    for offset, row in enumerate(rows):
        value = json_bytes(json.loads(row["p"]))
        key = row["aggregate_id"].encode()
        records.append(
            ConsumerRecord(
                topic=row["topic"],
                partition=0,
                offset=offset,
                timestamp=0,
                timestamp_type=0,
                key=key,
                value=value,
                checksum=None,
                serialized_key_size=len(key),
                serialized_value_size=len(value),
                headers=record_headers(json.loads(row["h"])),
            )
        )
    return records
