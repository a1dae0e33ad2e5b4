# A measurement script: it polls and starts a process from async code on purpose.
# ruff: noqa: ASYNC110, ASYNC220, ASYNC230
"""Benchmark (not a test): raw aiokafka consumption of N intake events vs. the metrics
pipeline processing the same N events to visible figures, on a fresh dev broker.

    uv run python services/metrics/bench/pipeline.py --events 40000

Prints events/s for both and the ratio. The pipeline figure is measured from the moment the
events are on the topic until the figures the processors committed to the metrics database
(a fresh one on the configured PostgreSQL server) count them all applied.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from eventkit import db, devstack
from eventkit.envelope import Envelope
from eventkit.service import load_services
from eventkit.settings import KernelSettings
from eventkit.topics import ensure_topics
from jingmin_metrics.adapters.figures_reader import FiguresReader
from jingmin_metrics.service import SERVICE

TOPIC = "intake.case.events.v1"


def case(t0: datetime) -> list[Envelope]:
    cid = uuid.uuid4().hex
    iso = lambda t: t.isoformat()  # noqa: E731

    def env(type_: str, version: int, at: datetime, data: dict[str, object]) -> Envelope:
        ce = f"jingmin.intake.{type_}.v1"
        body = {"case_id": cid, "bureau": "330602", "station": f"330602{version % 20 + 1:03d}",
                "occurred_at": iso(at), **data}  # fmt: skip
        return Envelope(str(uuid.uuid4()), "/jingmin/intake", ce, cid, at, body,
                        dataschema=f"urn:jingmin:schema:{ce}", bureau="330602",
                        streamid=cid, streamversion=version)  # fmt: skip

    return [
        env("CaseReceived", 1, t0, {"channel": "call_110", "kind": "alarm", "priority": "urgent",
            "area_type": "urban", "branch": "patrol", "subject_id": "sub_abcdefgh12",
            "deadlines": {"dispatch": iso(t0 + timedelta(seconds=60))}}),
        env("CaseDispatched", 2, t0 + timedelta(seconds=40), {"unit": "330602001",
            "officer_ids": ["p1"], "deadlines": {"arrival": iso(t0 + timedelta(seconds=340))}}),
        env("ArrivedOnScene", 3, t0 + timedelta(seconds=300), {}),
        env("CaseResolved", 4, t0 + timedelta(seconds=900), {}),
    ]  # fmt: skip


async def produce(bootstrap: str, n: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_batch_size=256 * 1024)  # fmt: skip
    await producer.start()
    t0 = datetime.now(UTC) - timedelta(days=2)
    futures = []
    for i in range(n // 4):
        for e in case(t0 + timedelta(seconds=i)):
            futures.append(await producer.send(TOPIC, key=e.key.encode(), value=e.kafka_value(),
                                               headers=e.kafka_headers()))  # fmt: skip
    await asyncio.gather(*futures)
    await producer.stop()


async def raw(bootstrap: str, n: int) -> float:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    tps = [TopicPartition(TOPIC, p) for p in range(12)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    seen, t0 = 0, time.monotonic()
    while seen < n:
        for records in (await consumer.getmany(timeout_ms=500, max_records=10000)).values():
            seen += len(records)
    elapsed = time.monotonic() - t0
    await consumer.stop()
    return elapsed


async def owned(dsn: str) -> list[int]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT partition FROM metrics_owners WHERE role = 'items'")
        return [r["partition"] for r in rows]
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=40000)
    args = parser.parse_args()
    n = args.events - args.events % 4
    home = Path(tempfile.mkdtemp(prefix="metrics-bench-"))
    broker = devstack.start_tansu(devstack.free_port(), log_path=home / "tansu.log")
    proc = None
    pg = devstack.resolve_postgres(KernelSettings())
    name = f"metrics_bench_{uuid.uuid4().hex[:8]}"
    await db.ensure_database(pg.address, name)
    dsn = db.database_dsn(pg.address, name)
    await asyncio.to_thread(db.migrate, dsn, SERVICE.migrations)
    try:
        bootstrap = broker.address
        await ensure_topics(bootstrap, [t for s in load_services().values()
                                        for t in devstack.service_topics(s)])  # fmt: skip
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "METRICS_PROCESSOR_PORT": "0",
               "METRICS_FAUST_DATADIR": str(home / "faust"), "METRICS_APP_ID": "bench",
               "METRICS_DATABASE_DSN": dsn}  # fmt: skip
        # BENCH_PROCESSOR: another command line for the processor (a profiler wrapping it).
        argv = os.environ.get("BENCH_PROCESSOR", "-m jingmin_metrics.stream worker").split()
        proc = subprocess.Popen([sys.executable, *argv],
                                env=env, stdout=open(home / "p.log", "wb"),
                                stderr=subprocess.STDOUT)  # fmt: skip
        while len(await owned(dsn)) < 12:
            await asyncio.sleep(1)
        await produce(bootstrap, n)
        t0 = time.monotonic()
        while (await FiguresReader(dsn).catch_up()).facts() < n:
            await asyncio.sleep(0.5)
        pipeline = time.monotonic() - t0
        baseline = await raw(bootstrap, n)
        print(f"events: {n}")
        print(f"raw aiokafka consumption: {n / baseline:,.0f} events/s ({baseline:.1f} s)")
        print(f"metrics pipeline to figures: {n / pipeline:,.0f} events/s ({pipeline:.1f} s)")
        print(f"ratio: {baseline / pipeline:.3f}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        broker.stop()
        await db.drop_database(pg.address, name)
        pg.stop()


if __name__ == "__main__":
    asyncio.run(main())
