"""A processor applies every record, whatever the changelog or the consumer lost.

`make chaos` (metrics-workers: kill -9 three times, a second processor joining and leaving)
found records whose offsets were committed but that no processor's table held at the end,
lost two ways. Each is made here on purpose.

1. The changelog lost what a commit covered: a processor applies two batches and stops
   cleanly (committing every offset), then the changelog is cut back to what it held after
   the first batch. The next processor must apply the second batch again.
2. The consumer never handed a record to faust (faust counts the jump in offsets as
   acknowledged): a processor started with the `faults` folder on PYTHONPATH loses chosen
   records between the Kafka client and faust, and must still apply them.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from eventkit import devstack, topics
from eventkit.envelope import Envelope
from eventkit.service import load_services
from eventkit.testing import wait_for
from jingmin_metrics.domain.facts import callback_root
from jingmin_metrics.service import processor_topics
from metricskit import ProcessorProcess
from support import case_events

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
PARTITIONS = 12
FAULTS = Path(__file__).resolve().parents[1] / "faults"
INTAKE = "intake.case.events.v1"
CALLBACKS = "visits.callback.events.v1"


def _cases(first: int, last: int) -> list[Envelope]:
    """Cases `first`..`last - 1`, an hour apart, with fixed ids: the ids are the Kafka keys,
    so which partition each record lands on (what the drops below pick from) is the same
    on every run."""
    return [
        e
        for i in range(first, last)
        for e in case_events(T0 + timedelta(hours=i), cid=uuid.UUID(int=i + 1).hex)
    ]


def _fact_id(e: Envelope) -> str:
    return f"{e.type.split('.')[1]}:{e.streamid}#{e.streamversion}"


async def _produce(bootstrap: str, events: list[Envelope]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for e in events:
            topic = INTAKE if ".intake." in e.type else CALLBACKS
            await producer.send_and_wait(
                topic, key=e.streamid.encode(), value=e.kafka_value(), headers=e.kafka_headers()
            )
    finally:
        await producer.stop()


def _held(dump: Path, events: list[Envelope]) -> bool:
    """Whether the processor's debug dump shows every event applied to its item."""
    try:
        items = json.loads(dump.read_text())["items"]
    except (OSError, ValueError):
        return False
    for e in events:
        root = e.streamid if ".intake." in e.type else callback_root(e.streamid, e.data)
        if _fact_id(e) not in items.get(root, []):
            return False
    return True


async def _partitions(bootstrap: str, topic: str) -> dict[int, int]:
    """Records per partition of `topic`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        return {tp.partition: n for tp, n in (await topics.end_offsets(consumer, tps)).items()}
    finally:
        await consumer.stop()


def _all_dropped(log: str, drops: list[str]) -> bool:
    said = [line for line in log.splitlines() if "METRICS_TEST_DROP dropped" in line]
    return all(
        any(f"('{t}', {p}, {o})" in line for line in said)
        for t, p, o in (d.rsplit(":", 2) for d in drops)
    )


async def _changelog(bootstrap: str, name: str) -> list[tuple[int, int, bytes, bytes | None]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await topics.rewind(consumer, [TopicPartition(name, p) for p in range(PARTITIONS)])
        return [
            (r.partition, r.offset, r.key, r.value)
            async for r in topics.read_to_end(consumer, ends)
            if r.key is not None
        ]
    finally:
        await consumer.stop()


@pytest.fixture
async def bootstrap(tmp_path: Path) -> AsyncIterator[str]:
    """A broker of the test's own (a changelog is cut and records dropped on purpose)."""
    broker = devstack.start_tansu(devstack.free_port(), log_path=tmp_path / "tansu.log")
    try:
        services = [t for s in load_services().values() for t in devstack.service_topics(s)]
        await topics.ensure_topics(broker.address, services)
        yield broker.address
    finally:
        broker.stop()


async def test_a_processor_reads_again_what_its_changelog_lost(
    tmp_path: Path, bootstrap: str
) -> None:
    app_id = f"metrics-loss-{uuid.uuid4().hex[:8]}"
    changelog = processor_topics(app_id, PARTITIONS)[1]
    first, second = _cases(0, 8), _cases(8, 16)

    before = ProcessorProcess(bootstrap, app_id, tmp_path, "before").start()
    try:
        await _produce(bootstrap, first)
        await wait_for(lambda: _held(tmp_path / "before.dump.json", first), 120, 0.5,
                       "the first processor did not apply the first batch")  # fmt: skip
        kept = await _changelog(bootstrap, changelog.name)
        await _produce(bootstrap, second)
        await wait_for(lambda: _held(tmp_path / "before.dump.json", first + second), 60, 0.5,
                       "the first processor did not apply the second batch")  # fmt: skip
    finally:
        before.stop()  # a clean stop: every offset of both batches is committed
    assert before.proc is not None and before.proc.returncode == 0, before.tail()

    # The changelog loses its tail: only what it held after the first batch is left.
    assert len(await _changelog(bootstrap, changelog.name)) > len(kept)
    await topics.recreate_topics(bootstrap, [changelog])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, _offset, key, value in kept:
            await producer.send_and_wait(changelog.name, key=key, value=value,
                                         partition=partition)  # fmt: skip
    finally:
        await producer.stop()

    after = ProcessorProcess(bootstrap, app_id, tmp_path, "after").start()
    try:
        await wait_for(lambda: _held(tmp_path / "after.dump.json", first + second), 120, 0.5,
                       "the next processor did not apply the second batch again")  # fmt: skip
        assert "reading the" in after.tail(200_000)
    finally:
        after.stop()


async def _caught_up(bootstrap: str, group: str) -> bool:
    """Whether `group` committed every record of the two topics the test writes."""
    member = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await member.start()
    try:
        for topic in (INTAKE, CALLBACKS):
            for partition, end in (await _partitions(bootstrap, topic)).items():
                done = await member.committed(TopicPartition(topic, partition))
                if end and done != end:
                    return False
        return True
    finally:
        await member.stop()


def _skipping(bootstrap: str, app_id: str, home: Path, name: str, drops: list[str]) -> Any:
    env = {
        "METRICS_TEST_DROP": ",".join(drops),
        "PYTHONPATH": os.pathsep.join([str(FAULTS), os.environ.get("PYTHONPATH", "")]),
    }
    return ProcessorProcess(bootstrap, app_id, home, name, env).start()


async def test_a_processor_reads_records_its_consumer_skipped(
    tmp_path: Path, bootstrap: str
) -> None:
    app_id = f"metrics-skip-{uuid.uuid4().hex[:8]}"
    first, second = _cases(0, 8), _cases(8, 20)
    await _produce(bootstrap, first)
    before = await _partitions(bootstrap, INTAKE)
    # Records of the fullest partitions: faust counts a jump as acknowledged and commits
    # past it. Offset 0 of a partition the group never committed: nothing said where it
    # starts but the log. Callbacks go through the regroup agent first.
    # The last record of a partition: no later one comes to reveal the jump.
    drops = []
    for topic, offsets, least in ((INTAKE, (0, 3, -1), 5), (CALLBACKS, (1,), 3)):
        sizes = await _partitions(bootstrap, topic)
        fullest = max(sizes, key=lambda p: sizes[p])
        assert sizes[fullest] >= least
        drops += [f"{topic}:{fullest}:{offset % sizes[fullest]}" for offset in offsets]
    proc = _skipping(bootstrap, app_id, tmp_path, "first", drops)
    try:
        await wait_for(lambda: _all_dropped(proc.tail(200_000), drops), 120, 0.5,
                       "the fault was not injected")  # fmt: skip
        await wait_for(lambda: _held(tmp_path / "first.dump.json", first), 120, 0.5,
                       "the processor did not apply the records it never received")  # fmt: skip
        assert "never arrived; reading them directly" in proc.tail(200_000)
        # faust never saw those records: its commits must still go past them.
        await wait_for(lambda: _caught_up(bootstrap, app_id), 60, 1.0,
                       "the group did not commit past the skipped records")  # fmt: skip
    finally:
        proc.stop()

    # The first two records after a committed offset: right after its seek faust saw no
    # jump, and it would not commit past offsets it never acknowledged.
    await _produce(bootstrap, second)
    after = await _partitions(bootstrap, INTAKE)
    grown = max(after, key=lambda p: after[p] - before[p])
    assert after[grown] - before[grown] >= 3
    drops = [f"{INTAKE}:{grown}:{before[grown]}", f"{INTAKE}:{grown}:{before[grown] + 1}"]
    proc = _skipping(bootstrap, app_id, tmp_path, "second", drops)
    try:
        await wait_for(lambda: _all_dropped(proc.tail(200_000), drops), 120, 0.5,
                       "the fault was not injected")  # fmt: skip
        await wait_for(lambda: _held(tmp_path / "second.dump.json", first + second), 120, 0.5,
                       "the next processor did not apply the records it never got")  # fmt: skip
        await wait_for(lambda: _caught_up(bootstrap, app_id), 60, 1.0,
                       "the group did not commit past the skipped records")  # fmt: skip
    finally:
        proc.stop()
