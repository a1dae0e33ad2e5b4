"""Creates and lists Kafka topics with the admin API, on Apache Kafka and Tansu alike."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from eventkit import kafka
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
        bootstrap_servers=bootstrap,
        client_id="jingmin-admin",
        request_timeout_ms=15000,
        **kafka.security_options(),
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


async def recreate_topics(
    bootstrap: str, topics: Sequence[TopicSpec], replicas: int | None = None
) -> None:
    """Delete `topics` and create them again at once, on one admin connection.

    For an operator, never at startup: on a broker that creates a topic on the first
    metadata request naming it (the Tansu dev broker always does), a running client can
    re-create it with the broker's default partition count in the moment between the two.
    """
    if not topics:
        return
    admin = await _admin(bootstrap)
    try:
        await admin.delete_topics([t.name for t in topics])
        await admin.create_topics([_new_topic(t, replicas or replication_factor()) for t in topics])
    finally:
        await admin.close()


async def repair_partitions(
    bootstrap: str, topics: Sequence[TopicSpec], replicas: int | None = None
) -> list[str]:
    """Recreate those of `topics` that exist with another partition count; returns them.

    Only for topics whose records the owner can write again (a processor's regroup topic),
    never for a service's or a partner's topic. A broker that creates a topic on the first
    metadata request naming it (Tansu always does; Apache Kafka with
    auto.create.topics.enable) gives it its default partition count when a running client
    asks before the owner has made it, e.g. when a lost cluster comes back; keyed records
    would then land on partitions their owner does not expect.
    """
    have = await list_topics(bootstrap)
    wrong = [t for t in topics if t.name in have and have[t.name] != t.partitions]
    if wrong:
        await recreate_topics(bootstrap, wrong, replicas)
    return [t.name for t in wrong]


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


async def end_offsets(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], within: float = 10.0
) -> dict[TopicPartition, int]:
    """The end offset (high watermark) of each partition, right on Tansu too.

    `consumer.end_offsets` (ListOffsets) alone is not enough: Tansu 0.6 answers it with the
    base offset of the partition's last record batch plus one, short of the end whenever
    that batch held several records (19 records in 4 batches: it said 17). Its fetch
    responses carry the right high watermark, so each partition is fetched once from just
    below that answer; on Apache Kafka this costs one empty fetch. The partitions must be
    assigned to `consumer`; its positions move, so seek afterwards.
    """
    wanted = list(partitions)
    if not wanted:
        return {}
    listed = await consumer.end_offsets(wanted)
    for tp in wanted:
        consumer.seek(tp, max(0, listed[tp] - 1))
    deadline = time.monotonic() + within
    while any(consumer.highwater(tp) is None for tp in wanted):
        if time.monotonic() > deadline:
            raise TimeoutError("no high watermark for some partitions")
        await consumer.getmany(*wanted, timeout_ms=200, max_records=1)
        await asyncio.sleep(0)
    # The fetch's high watermark is what can be read. It is also below ListOffsets' answer
    # when Tansu took records for a topic that did not exist yet (a producer with old
    # metadata, writing to a refilled broker before its topics were made): it counts them,
    # fetches never return them.
    return {tp: consumer.highwater(tp) or 0 for tp in wanted}


async def rewind(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """Assign `partitions` to `consumer`, find their true ends, and seek to the beginning.

    A reader that reads until every position reaches the returned end has read everything
    the partitions held when it started (`consumer.end_offsets` alone stops short on Tansu:
    see `end_offsets`).
    """
    wanted = list(partitions)
    consumer.assign(wanted)
    ends = await end_offsets(consumer, wanted)
    if wanted:
        await consumer.seek_to_beginning(*wanted)
    return ends


class Truncated(RuntimeError):
    """A partition's log shrank while it was read: the broker lost it and it is refilled."""


async def read_to_end(
    consumer: AIOKafkaConsumer,
    ends: Mapping[TopicPartition, int],
    *,
    stall: float = 30.0,
) -> AsyncIterator[ConsumerRecord]:
    """The records of the assigned partitions until each position reaches its end in `ends`
    (what `rewind` returned).

    Raises `Truncated` when a partition's high watermark falls below its end, and
    `TimeoutError` when nothing arrives for `stall` seconds (the broker is away). A plain
    "read while position < end" loop waits for ever in both cases: a lost and refilled log
    never reaches the old end again, and that hung the processors' publisher.
    """
    moved = time.monotonic()
    while True:
        behind = []
        for tp, end in ends.items():
            if await asyncio.wait_for(consumer.position(tp), stall) < end:
                behind.append(tp)
        if not behind:
            return
        for tp in behind:
            highwater = consumer.highwater(tp)
            if highwater is not None and highwater < ends[tp]:
                raise Truncated(f"{tp.topic}[{tp.partition}] ends at {highwater}, not {ends[tp]}")
        batches = await consumer.getmany(*behind, timeout_ms=500)
        if any(batches.values()):
            moved = time.monotonic()
        elif time.monotonic() - moved > stall:
            raise TimeoutError(f"nothing read for {stall:.0f} s from {len(behind)} partitions")
        for records in batches.values():
            for record in records:
                yield record


async def print_records(
    bootstrap: str,
    topic: str,
    *,
    follow: bool = False,
    limit: int = 0,
    echo: Callable[[str], None] = print,
) -> int:
    """Print every record of `topic` from the beginning, as `kcat -C -f '%k %h\n%s\n'` does.

    Reads by explicit partition assignment (no consumer group, nothing committed), so it
    can look at any topic without disturbing its consumers. Returns how many it printed.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **kafka.security_options()
    )
    await consumer.start()
    printed = 0
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer.topics()  # the first metadata fetch may not have listed it yet
            partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise LookupError(f"no topic {topic!r} on {bootstrap}")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        ends = await end_offsets(consumer, assigned)
        await consumer.seek_to_beginning(*assigned)
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for r in records:
                    headers = " ".join(
                        f"{k}={(v or b'').decode(errors='replace')}" for k, v in r.headers
                    )
                    key = (r.key or b"").decode(errors="replace")
                    echo(f"{key} {headers}\n{(r.value or b'').decode(errors='replace')}")
                    printed += 1
                    if limit and printed >= limit:
                        return printed
            if not follow and not batches:
                positions = {tp: await consumer.position(tp) for tp in assigned}
                if all(positions[tp] >= ends[tp] for tp in assigned):
                    return printed
    finally:
        await consumer.stop()
