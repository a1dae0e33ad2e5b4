"""Batched application keeps the processors' guarantees (`stream/batch.py`).

The agent's `flush` is driven here with stand-ins for faust (events, the table, the
stream that acknowledges): an event is acknowledged only after its item is written, a
batch interrupted acknowledges nothing it has not applied, events of an older consumer
generation are neither applied nor acknowledged, and batches of any size give the cells
that one event at a time gives.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jingmin_metrics.domain.facts import INTAKE_TOPIC, make_fact
from jingmin_metrics.stream import app as agent
from jingmin_metrics.stream.batch import Batch
from jingmin_metrics.stream.processor import Processor
from support import case_events

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    generation_id: int


@dataclass
class Event:
    message: Message


@dataclass
class Log:
    """What the stand-ins saw, in order: ("put", key) and ("ack", offset)."""

    steps: list[tuple[str, Any]] = field(default_factory=list)
    data: dict[bytes, bytes] = field(default_factory=dict)

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        self.steps.append(("put", key))
        self.data[key] = value

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    async def ack(self, event: Event) -> bool:
        self.steps.append(("ack", event.message.offset))
        return True

    def acked(self) -> list[int]:
        return [o for s, o in self.steps if s == "ack"]


def _events(cases: int, generation: int = 1, partitions: int = 3) -> list[Event]:
    out = []
    for i in range(cases):
        for e in case_events(T0 + timedelta(minutes=i))[:6]:  # the intake events
            assert e.streamid is not None
            out.append(
                Event(
                    Message(
                        INTAKE_TOPIC,
                        i % partitions,
                        len(out),
                        e.streamid.encode(),
                        e.kafka_value(),
                        e.kafka_headers(),
                        generation,
                    )
                )
            )
    return out


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> Log:
    log = Log()
    generation = {"id": 1}
    processor = Processor()
    processor.rebuild(range(3), [])
    monkeypatch.setattr(agent, "table", log)
    monkeypatch.setattr(agent, "_stream", log)
    monkeypatch.setattr(agent, "processor", processor)
    monkeypatch.setattr(agent, "batch", Batch(lambda: generation["id"], limit=10_000))
    monkeypatch.setattr(agent, "_active", lambda: {0, 1, 2})
    log.generation = generation  # type: ignore[attr-defined]
    return log


async def test_each_item_is_written_once_per_batch_before_any_acknowledgement(log: Log) -> None:
    events = _events(20)
    for e in events:
        agent.batch.add(e)
    await agent.flush()
    puts = [k for s, k in log.steps if s == "put"]
    assert len(puts) == len(set(puts)) == 20
    first_ack = next(i for i, (s, _) in enumerate(log.steps) if s == "ack")
    assert all(s == "put" for s, _ in log.steps[:first_ack])
    assert sorted(log.acked()) == [e.message.offset for e in events]
    assert agent.processor.partitions[0].facts + agent.processor.partitions[1].facts + (
        agent.processor.partitions[2].facts
    ) == len(events)


async def test_events_of_an_older_generation_are_neither_applied_nor_acknowledged(
    log: Log,
) -> None:
    old = _events(3, generation=1)
    for e in old:
        agent.batch.add(e)
    log.generation["id"] = 2  # type: ignore[attr-defined]  # a rebalance while the batch filled
    new = _events(2, generation=2)
    for e in new:
        e.message.offset += 1000
        agent.batch.add(e)
    await agent.flush()
    assert log.acked() == [e.message.offset for e in new]
    assert sum(p.facts for p in agent.processor.partitions.values()) == len(new)


async def test_a_flush_cancelled_while_dead_lettering_acknowledges_nothing_after_it(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = _events(2)
    events[3].message.value = b"not json"
    events[5].message.value = b"not json either"
    sent: list[int] = []

    async def dead_letter(message: Message, reason: str) -> None:
        sent.append(message.offset)
        await asyncio.Event().wait()  # the broker never answers; the worker stops

    monkeypatch.setattr(agent, "dead_letter", dead_letter)
    for e in events:
        agent.batch.add(e)
    task = asyncio.create_task(agent.flush())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The applied events were written, then acknowledged; the two bad ones were not.
    assert sent == [3]
    assert sorted(log.acked()) == [o for o in range(len(events)) if o not in (3, 5)]
    assert len(agent.batch) == 0


async def test_a_batch_not_flushed_acknowledges_nothing(log: Log) -> None:
    for e in _events(5):
        agent.batch.add(e)
    agent.batch = Batch(lambda: 1, limit=10)  # the worker died: the batch is gone
    await agent.flush()
    assert log.steps == []


def _cells(processor: Processor) -> dict[Any, Any]:
    return {
        (p, k): dict(v)
        for p, part in processor.partitions.items()
        for k, v in part.cells.chunks.items()
        if v
    }


def test_batches_of_any_size_give_the_cells_of_one_event_at_a_time() -> None:
    deliveries = []
    for i in range(8):
        for e in case_events(T0 + timedelta(hours=i)):
            assert e.streamid is not None and e.streamversion is not None
            fact = make_fact(e.type, e.data, e.data["occurred_at"], e.bureau, e.data["station"])
            stream = f"{e.type.split('.')[1]}:{e.streamid}"
            deliveries.append((i % 2, f"item{i}".encode(), stream, e.streamversion, fact))
    rng = random.Random(11)
    single = Processor()
    single.rebuild([0, 1], [])
    table: dict[bytes, bytes] = {}
    for partition, key, stream, version, fact in deliveries * 2:
        new = single.apply(partition, key, stream, version, dict(fact), table.get(key))
        if new is not None:
            table[key] = new
    for _ in range(10):
        noisy = deliveries * 2
        rng.shuffle(noisy)
        batched = Processor()
        batched.rebuild([0, 1], [])
        stored: dict[bytes, bytes] = {}
        while noisy:
            size = rng.randint(1, 12)
            chunk, noisy = noisy[:size], noisy[size:]
            touched = {}
            for partition, key, stream, version, fact in chunk:
                if batched.add(partition, key, stream, version, dict(fact), stored.get(key)):
                    touched[key] = partition
            for key, partition in touched.items():
                stored[key] = batched.settle(partition, key)
        assert _cells(batched) == _cells(single)
        assert stored == table
        assert {p: b.facts for p, b in batched.partitions.items()} == {
            p: s.facts for p, s in single.partitions.items()
        }


def test_batch_age_and_size() -> None:
    batch = Batch(lambda: 1, limit=2)
    assert batch.age() == 0.0
    assert not batch.add(Event(Message("t", 0, 0, b"k", b"", [], 1)))
    assert batch.age() >= 0.0
    assert batch.add(Event(Message("t", 0, 1, b"k", b"", [], 1)))
    assert len(batch.take()) == 2 and len(batch) == 0
