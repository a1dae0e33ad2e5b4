"""What every scenario requires once the platform has recovered.

(a) accepted: every command the API accepted (a 2xx the client received) is in its
    service's store: the stream exists at that version or later, and each event the answer
    lists is stored at its version with its type.
(b) topics: the set of (topic, ce_id) the stores imply (every stored event through its
    service's `to_messages`, the mapping the relay and `jingmin replay` use) equals the set
    on the broker: none missing, none unexpected, and every copy carries the same key and
    bytes. Duplicates on the wire are allowed and counted; dead-letter topics are counted,
    not compared; compacted topics (metrics' derived figures) are not compared.
(c) metrics: `jingmin verify metrics` shows zero differences and every stored event
    applied (when metrics runs).
(d) recovered: every outbox published and every consumer group caught up (lag 0).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from eventkit import kafka
from eventkit.db import create_pool
from eventkit.store import START, Position, PostgresEventStore

from chaoslib.load import Accepted
from chaoslib.stack import Stack, end_offsets, partitions_of

EXAMPLES = 5


@dataclass
class Check:
    name: str
    ok: bool | None  # None: skipped
    detail: str
    lines: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "SKIP" if self.ok is None else "PASS" if self.ok else "FAIL"


# ----------------------------------------------------------------------------- (a) accepted


async def check_accepted(stack: Stack, accepted: Sequence[Accepted]) -> Check:
    wanted: dict[str, dict[str, list[Accepted]]] = {}
    for a in accepted:
        wanted.setdefault(a.service, {}).setdefault(a.stream_id, []).append(a)
    problems: list[str] = []
    promised_events = 0
    for service, streams in wanted.items():
        conn = await asyncpg.connect(stack.dsn(service))
        try:
            rows = await conn.fetch(
                "SELECT stream_id, version, type FROM events WHERE stream_id = ANY($1::text[])",
                list(streams),
            )
        finally:
            await conn.close()
        stored: dict[str, dict[int, str]] = {}
        for r in rows:
            stored.setdefault(r["stream_id"], {})[r["version"]] = r["type"]
        for stream_id, answers in streams.items():
            have = stored.get(stream_id, {})
            for a in answers:
                promised_events += len(a.events)
                if not have:
                    problems.append(f"{service} {a.endpoint}: stream {stream_id} not stored")
                    continue
                if max(have) < a.version:
                    problems.append(
                        f"{service} {a.endpoint}: stream {stream_id} at version {max(have)}, "
                        f"the answer said {a.version}"
                    )
                for type_, version in a.events:
                    if have.get(version) != type_:
                        problems.append(
                            f"{service} {a.endpoint}: {stream_id} v{version} is "
                            f"{have.get(version)!r}, the answer said {type_!r}"
                        )
    streams_n = sum(len(s) for s in wanted.values())
    detail = (
        f"{len(accepted)} accepted answers over {streams_n} streams "
        f"({promised_events} events promised): "
        + ("all stored" if not problems else f"{len(problems)} not as answered")
    )
    lines = problems[:EXAMPLES]
    if not accepted:
        lines = ["no command was accepted at all: the load did nothing"]
    return Check("(a) nothing accepted lost", not problems and bool(accepted), detail, lines)


# ------------------------------------------------------------------------------- (b) topics

Expected = dict[tuple[str, str], tuple[bytes, bytes, str]]


@dataclass
class StoreReader:
    """Every stored event of the event-sourced services, as the messages it implies."""

    stack: Stack
    expected: Expected = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    events: int = 0

    def services(self) -> list[str]:
        return list(self.stack.specs)

    def topics(self) -> set[str]:
        """The event topics: every declared topic but dead-letter and compacted ones.

        A compacted topic keeps only the latest record per key: it holds derived state
        (metrics' snapshot and daily figures), never the log of stored events.
        """
        out: set[str] = set()
        for spec in self.stack.specs.values():
            out |= {
                t.name for t in spec.topics if t.name != spec.dead_letter_topic and not t.compacted
            }
        return out

    def derived_topics(self) -> set[str]:
        return {t.name for s in self.stack.specs.values() for t in s.topics if t.compacted}

    def dead_letter_topics(self) -> set[str]:
        return {s.dead_letter_topic for s in self.stack.specs.values() if s.dead_letter_topic}

    async def read(self) -> int:
        """Read what was stored since the last call; how many events that was."""
        n = 0
        for name in self.services():
            spec = self.stack.specs[name]
            pool = await create_pool(self.stack.dsn(name), min_size=1, max_size=2)
            try:
                store = PostgresEventStore(pool)
                position = self.positions.get(name, START)
                while batch := await store.read_all(position, limit=5000):
                    for event in batch:
                        for m in spec.to_messages(event):
                            self.expected[(m.topic, m.event_id)] = (
                                m.aggregate_id.encode(),
                                kafka.json_bytes(m.payload),
                                m.type,
                            )
                    n += len(batch)
                    position = batch[-1].position
                self.positions[name] = position
            finally:
                await pool.close()
        self.events += n
        return n


@dataclass
class Wire:
    copies: Counter[tuple[str, str]] = field(default_factory=Counter)
    first: dict[tuple[str, str], tuple[bytes, bytes, str]] = field(default_factory=dict)
    no_id: Counter[str] = field(default_factory=Counter)
    differing: list[str] = field(default_factory=list)
    records: Counter[str] = field(default_factory=Counter)


async def read_topics(bootstrap: str, names: Iterable[str]) -> Wire:
    """Every record of the topics, from the start to the end each partition has now."""
    wire = Wire()
    tps = await partitions_of(bootstrap, names)
    ends = await end_offsets(bootstrap, tps)
    todo = {tp for tp in tps if ends[tp] > 0}
    if not todo:
        return wire
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=4 << 20
    )
    await consumer.start()
    try:
        consumer.assign(sorted(todo))
        await consumer.seek_to_beginning(*todo)
        deadline = time.monotonic() + 300
        while todo and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, records in batches.items():
                for r in records:
                    if r.offset >= ends[tp]:
                        continue
                    wire.records[tp.topic] += 1
                    headers = dict(r.headers or ())
                    ce_id = (headers.get("ce_id") or b"").decode()
                    ce_type = (headers.get("ce_type") or b"").decode()
                    if not ce_id:
                        wire.no_id[tp.topic] += 1
                        continue
                    k = (tp.topic, ce_id)
                    got = (r.key or b"", r.value or b"", ce_type)
                    if k in wire.first and wire.first[k] != got:
                        wire.differing.append(f"{tp.topic} {ce_id}: two copies differ")
                    wire.first.setdefault(k, got)
                    wire.copies[k] += 1
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
        if todo:
            raise TimeoutError(f"could not read {len(todo)} partitions to their end")
    finally:
        await consumer.stop()
    return wire


async def check_topics(stack: Stack) -> Check:
    """(b), in an order that cannot blame a race on the platform: stores, then the broker
    once every outbox row of what was read is published, then the stores again (an event
    stored meanwhile may be on the wire; it is expected by then)."""
    reader = StoreReader(stack)
    await reader.read()
    before = dict(reader.expected)
    settle = await stack.quiesce(60, stable=1)
    wire = await read_topics(stack.bootstrap, reader.topics() | reader.dead_letter_topics())
    await reader.read()
    topics = reader.topics()
    on_wire = {k for k in wire.copies if k[0] in topics}
    missing = sorted(set(before) - on_wire)
    unexpected = sorted(on_wire - set(reader.expected))
    differing = list(wire.differing)
    for k in on_wire & set(reader.expected):
        key, value, ce_type = reader.expected[k]
        got = wire.first[k]
        if got != (key, value, ce_type):
            what = [
                n
                for n, a, b in zip(
                    ("key", "value", "ce_type"), got, (key, value, ce_type), strict=True
                )
                if a != b
            ]
            differing.append(f"{k[0]} {k[1]}: {', '.join(what)} differ from the store's")
    duplicates = sum(n - 1 for k, n in wire.copies.items() if k[0] in topics)
    dlq = {t: wire.records.get(t, 0) for t in sorted(reader.dead_letter_topics())}
    no_id = sum(n for t, n in wire.no_id.items() if t in topics)
    ok = not missing and not unexpected and not differing and not no_id
    lines = []
    lines += [f"missing from the broker: {t} {i}" for t, i in missing[:EXAMPLES]]
    lines += [f"on the broker, not in any store: {t} {i}" for t, i in unexpected[:EXAMPLES]]
    lines += differing[:EXAMPLES]
    if no_id:
        lines.append(f"{no_id} records without ce_id on event topics")
    if not settle.get("settled"):
        lines.append(f"outboxes not drained before reading the broker: {settle}")
    per_topic = Counter(t for t, _ in reader.expected)
    detail = (
        f"{reader.events} stored events -> {len(reader.expected)} messages expected on "
        f"{len(per_topic)} topics; broker: {len(on_wire)} distinct, {duplicates} duplicate "
        f"copies; missing {len(missing)}, unexpected {len(unexpected)}, differing "
        f"{len(differing)}; DLQ records "
        + (", ".join(f"{t}={n}" for t, n in dlq.items()) or "none")
    )
    derived = sorted(reader.derived_topics())
    if derived:
        detail += f"; not compared (compacted, derived): {', '.join(derived)}"
    return Check("(b) topics equal the stores", ok, detail, lines)


# ------------------------------------------------------------------------------ (c) metrics


async def check_metrics(stack: Stack, wait: float) -> Check:
    name = "(c) jingmin verify metrics"
    if "metrics" not in stack.specs:
        why = stack.skipped.get("metrics", "not installed")
        return Check(name, None, f"metrics service not running: {why}")
    t0 = time.monotonic()
    code, out = await stack.cli("verify", "metrics", "--wait", f"{wait:g}", within=wait + 300)
    lines = [line for line in out.strip().splitlines() if line.strip()]
    summary = next((line for line in reversed(lines) if line.startswith("metrics:")), None)
    detail = (summary or (lines[-1] if lines else "no output")) + (
        f" (exit {code}, {time.monotonic() - t0:.0f} s)"
    )
    return Check(name, code == 0, detail, [] if code == 0 else lines[-EXAMPLES * 2 :])


# ---------------------------------------------------------------------------- (d) recovered


def check_recovered(settled: dict[str, Any], groups_before: set[str]) -> Check:
    lag = settled.get("consumer_lag", {})
    missing_groups = sorted(groups_before - set(lag))
    ok = bool(settled.get("settled")) and not missing_groups
    detail = (
        f"{'settled' if settled.get('settled') else 'NOT settled'} after "
        f"{settled.get('seconds')} s: outbox pending {settled.get('outbox_pending')}, "
        f"{len(lag)} consumer groups, total lag {sum(lag.values())}"
    )
    lines = [f"consumer group {g} did not come back" for g in missing_groups]
    lines += [f"group {g}: lag {n}" for g, n in sorted(lag.items()) if n]
    if settled.get("error"):
        lines.append(f"last error: {settled['error']}")
    return Check("(d) recovered: outboxes drained, consumers caught up", ok, detail, lines)


# ---------------------------------------------------------------------------- (s) callbacks

SATISFACTION = {"satisfied": "满意", "basically_satisfied": "基本满意", "dissatisfied": "不满意"}


@dataclass
class Callbacks:
    """What the stores hold of satisfaction: answered callbacks and recovery orders."""

    phone: int = 0
    sms: int = 0
    satisfaction: Counter[str] = field(default_factory=Counter)
    recovery_orders: int = 0
    follow_ups: int = 0

    @property
    def answered(self) -> int:
        return self.phone + self.sms

    def __sub__(self, other: Callbacks) -> Callbacks:
        return Callbacks(
            self.phone - other.phone,
            self.sms - other.sms,
            self.satisfaction - other.satisfaction,
            self.recovery_orders - other.recovery_orders,
            self.follow_ups - other.follow_ups,
        )

    def summary(self) -> str:
        values = ", ".join(f"{zh} {self.satisfaction[k]}" for k, zh in SATISFACTION.items())
        return (
            f"callbacks answered {self.answered} (phone {self.phone} / SMS page {self.sms}): "
            f"{values}; recovery orders opened {self.recovery_orders}; follow-up callbacks "
            f"answered {self.follow_ups}"
        )


async def count_callbacks(stack: Stack) -> Callbacks | None:
    """The answered callbacks in visits' store and the recovery orders in complaints'."""
    if "visits" not in stack.specs:
        return None
    out = Callbacks()
    conn = await asyncpg.connect(stack.dsn("visits"))
    try:
        rows = await conn.fetch(
            """SELECT data->>'via' AS via, data->>'satisfaction' AS satisfaction,
                      stream_id LIKE '%-service_recovery' AS follow_up, count(*) AS n
               FROM events WHERE type = 'CallbackAnswered' GROUP BY 1, 2, 3"""
        )
    finally:
        await conn.close()
    for r in rows:
        if r["via"] == "survey":
            out.sms += r["n"]
        else:
            out.phone += r["n"]
        out.satisfaction[r["satisfaction"]] += r["n"]
        if r["follow_up"]:
            out.follow_ups += r["n"]
    if "complaints" in stack.specs:
        conn = await asyncpg.connect(stack.dsn("complaints"))
        try:
            out.recovery_orders = await conn.fetchval(
                """SELECT count(*) FROM events WHERE type = 'OrderIssued'
                   AND data->>'order_type' = 'service_recovery'"""
            )
        finally:
            await conn.close()
    return out


async def check_callbacks(stack: Stack, before: Callbacks | None, required: int) -> Check:
    """(s) the load exercised satisfaction: at least `required` callbacks answered during
    the scenario (phone and SMS page), every satisfaction value among them, and 不满意
    answers carried through recovery orders to answered follow-up callbacks."""
    name = "(s) satisfaction under the fault"
    after = await count_callbacks(stack)
    if after is None or before is None:
        return Check(name, None, "visits not running, or no simulator in the load")
    got = after - before
    problems = []
    if got.answered < required:
        problems.append(f"{got.answered} callbacks answered, fewer than {required}")
    if required:
        problems += [f"no {zh} answer" for k, zh in SATISFACTION.items() if not got.satisfaction[k]]
        if "complaints" in stack.specs and not got.recovery_orders:
            problems.append("no recovery order opened")
        if "complaints" in stack.specs and not got.follow_ups:
            problems.append("no follow-up callback answered")
    return Check(name, not problems, got.summary(), problems)
