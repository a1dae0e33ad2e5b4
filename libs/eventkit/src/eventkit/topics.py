"""Creates and lists Kafka topics with the admin API, on Apache Kafka and Tansu alike."""

from __future__ import annotations

import os
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from eventkit.service import TopicSpec


def replication_factor() -> int:
    """KAFKA_REPLICATION_FACTOR, default 1 (a single dev broker has no replicas)."""
    return int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1"))


def _new_topic(spec: TopicSpec, replicas: int) -> NewTopic:
    configs: dict[str, str] = {}
    if spec.compacted:
        configs["cleanup.policy"] = "compact"
    if spec.retention_ms is not None:
        configs["retention.ms"] = str(spec.retention_ms)
    return NewTopic(spec.name, spec.partitions, replicas, topic_configs=configs)


async def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="jingmin-admin", request_timeout_ms=15000
    )
    await admin.start()
    return admin


async def ensure_topics(
    bootstrap: str, topics: Sequence[TopicSpec], replicas: int | None = None
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created.

    An existing topic is left as it is, even if its partitions or configs differ:
    changing them is an operator's decision, not a side effect of starting up.
    """
    wanted = {t.name: t for t in topics}
    if not wanted:
        return []
    replicas = replicas or replication_factor()
    admin = await _admin(bootstrap)
    try:
        existing = set(await admin.list_topics())
        missing = [t for name, t in wanted.items() if name not in existing]
        if not missing:
            return []
        response = await admin.create_topics([_new_topic(t, replicas) for t in missing])
    finally:
        await admin.close()
    created = []
    # Errors come back per topic, not raised; another process may have won the race.
    for name, code, *rest in response.topic_errors:
        if code == 0:
            created.append(name)
            continue
        error = for_code(code)
        if error is not TopicAlreadyExistsError:
            message = rest[0] if rest else ""
            raise error(f"creating topic {name!r}: {message}")
    return created


async def list_topics(bootstrap: str) -> dict[str, int]:
    """Every topic on the cluster, by name, with its partition count."""
    admin = await _admin(bootstrap)
    try:
        described = await admin.describe_topics()
    finally:
        await admin.close()
    return {
        t["topic"]: len(t["partitions"])
        for t in sorted(described, key=lambda t: t["topic"])
        if not t.get("is_internal")
    }
