"""End to end: traffic through the real APIs, the real relays, Kafka (Tansu), the faust
processors as OS processes; `verify` (the SQL oracle) must find zero differences, also
after every message is delivered again while a processor is killed with `kill -9`, and
with two processors sharing the partitions."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eventkit import devstack, topics
from eventkit.service import load_services
from eventkit.testing import DatabaseFactory, wait_for
from eventkit.topics import ensure_topics
from jingmin_metrics.adapters.figures_reader import FiguresReader
from jingmin_metrics.oracle.verify import verify, verify_once
from jingmin_sim.api import DevTokens, RequestLog
from jingmin_sim.simulate import Config, simulate
from jingmin_sim.windows import fixed_window_end
from metricskit import ProcessorProcess, platform

pytestmark = pytest.mark.integration


# 18:00 Beijing on Friday 2026-11-20: the window covers two working days, when engagement
# events and inspections happen too. A fixed window (not "last Friday") so every run
# simulates the same stories: with this seed it holds every measure kind asserted below,
# complaints included, whatever day the suite runs. (On a clock that reads earlier than
# that, the window moves back whole weeks to one of working days: fixed_window_end.)
REFERENCE_END = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
END = fixed_window_end(REFERENCE_END, 1.5)

# A measure kind, and the stored event types (any of them) it is streamed from.
MEASURE_SOURCES = {
    "intake.received": {"CaseReceived"},
    "intake.dispatch_latency": {"CaseDispatched"},
    "intake.closed": {"CaseClosed"},
    "callback.answered": {"CallbackAnswered"},
    "callback.completed_in_window": {"CallbackAnswered"},
    "complaints.received": {"ComplaintReceived"},
    "supervision.issued": {"OrderIssued"},
    "supervision.inspections": {"InspectionCompleted"},
    "visits.attempted": {"VisitCompleted", "VisitFailed"},
    "engagement.held": {"EngagementHeld"},
}


async def _stored_types(pools: dict[str, Any]) -> set[str]:
    """Event types the services' stores hold, without their prefix and version."""
    types: set[str] = set()
    for name, pool in pools.items():
        if name == "metrics":
            continue
        for row in await pool.fetch("SELECT DISTINCT type FROM events"):
            parts = row["type"].split(".")
            types.add(parts[-2] if len(parts) > 2 else parts[-1])
    return types


def workload(**overrides: Any) -> Config:
    values: dict[str, Any] = {
        "seed": "metrics-oracle",
        "bureaus": 1,
        "stations": 3,
        "days": 1.5,
        "rate": 2.0,
        "end": END,
        "concurrency": 8,
        "discover_timeout": 20.0,
        "poll_interval": 0.05,
        "progress": False,
    }
    values.update(overrides)
    return Config(**values)


async def converged(dsns: dict[str, str], bootstrap: str, procs: list[ProcessorProcess]) -> None:
    lines: list[str] = []
    code = await verify(dsns, bootstrap, wait=180, echo=lines.append)
    logs = "\n".join(p.tail() for p in procs)
    assert code == 0, "\n".join(lines) + "\n--- processor logs ---\n" + logs


async def test_streamed_figures_equal_the_sql_recomputation_through_redelivery_and_kill_9(
    fresh_database: DatabaseFactory, tmp_path: Path, metrics_broker: str
) -> None:
    app_id = f"metrics-test-{uuid.uuid4().hex[:8]}"
    async with platform(fresh_database, tmp_path, metrics_broker) as p:
        first = ProcessorProcess(metrics_broker, app_id, tmp_path, "first").start()
        procs = [first]
        try:
            result = await simulate(workload(), p.clients, DevTokens(p.settings), log=RequestLog())
            assert result.stats.error_count == 0
            await wait_for(lambda: _drained(p), timeout=60, message="relays did not drain")
            await converged(p.dsns, metrics_broker, procs)
            report = await verify_once(p.dsns, metrics_broker)
            assert report.cells > 200, report
            view = await FiguresReader(p.metrics_dsn).catch_up()
            seen = {m for cells in view.merged().values() for (m, _d) in cells}
            # Every measure kind whose events the stores hold is streamed. The reference
            # window holds them all, so there the comparison covers every measure kind.
            stored = await _stored_types(p.pools)
            expected = {m for m, types in MEASURE_SOURCES.items() if types & stored}
            if END == REFERENCE_END:
                assert expected == set(MEASURE_SOURCES), sorted(stored)
            assert expected <= seen, sorted(seen)
            assert report.streamed_facts == report.stored_facts > 400

            # Every message again (a relay retry, a replay), and a processor killed with
            # -9 while it applies them: nothing may count twice, nothing may be lost.
            await p.redeliver()
            first.kill()
            second = ProcessorProcess(metrics_broker, app_id, tmp_path, "second").start()
            third = ProcessorProcess(metrics_broker, app_id, tmp_path, "third").start()
            procs += [second, third]
            # More traffic while two processors share the partitions, and one of them is
            # killed with -9 three times (each restart is a rebalance with recovery).
            chaos = asyncio.create_task(_kill_three_times(procs, metrics_broker, app_id, tmp_path))
            more = await simulate(
                workload(seed="metrics-oracle-2", end=END + timedelta(hours=12), days=0.25),
                p.clients,
                DevTokens(p.settings),
                log=RequestLog(),
            )
            await chaos
            assert more.stats.error_count == 0
            await wait_for(lambda: _drained(p), timeout=60, message="relays did not drain")
            await converged(p.dsns, metrics_broker, procs)
            again = await verify_once(p.dsns, metrics_broker)
            if again.streamed_facts != again.stored_facts:
                print(await _diagnose(p, metrics_broker, app_id, procs))
            assert again.streamed_facts == again.stored_facts > report.stored_facts, again
            view = await FiguresReader(p.metrics_dsn).catch_up()
            assert len(view.status) == 12
            before = view.merged()

            # The broker is lost: a new one is refilled from the stores (what `jingmin
            # replay` publishes) and fresh processors rebuild the same figures.
            for proc in procs:
                proc.stop()
            fresh = devstack.start_tansu(devstack.free_port(), log_path=tmp_path / "tansu2.log")
            try:
                await ensure_topics(
                    fresh.address,
                    [t for s in load_services().values() for t in devstack.service_topics(s)],
                )
                p.bootstrap = fresh.address
                await p.redeliver()
                reborn = ProcessorProcess(fresh.address, app_id, tmp_path, "reborn").start()
                procs.append(reborn)
                await converged(p.dsns, fresh.address, procs)
                after = (await FiguresReader(p.metrics_dsn).catch_up()).merged()
                assert after == before
            finally:
                for proc in procs:
                    proc.stop()
                fresh.stop()
        finally:
            for proc in procs:
                proc.stop()


async def _kill_three_times(
    procs: list[ProcessorProcess], bootstrap: str, app_id: str, home: Path
) -> None:
    for i in range(3):
        await asyncio.sleep(6)
        victim = procs[-1]
        victim.kill()
        procs.append(ProcessorProcess(bootstrap, app_id, home, f"chaos{i}").start())


async def _drained(p: Any) -> bool:
    await p.pump()
    return await p.pending() == 0


async def _diagnose(p: Any, bootstrap: str, app_id: str, procs: list[ProcessorProcess]) -> str:
    """Which stored events no changelog record holds, and where they are on the topics."""
    import json as _json

    from aiokafka import AIOKafkaConsumer, TopicPartition
    from jingmin_metrics.domain.facts import RULES

    short = {ce.split(".")[2] for ce in RULES}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    held: set[tuple[str, str]] = set()
    last: dict[bytes, set[tuple[str, str]]] = {}
    lines: list[str] = []
    try:
        topic = f"{app_id}-items-changelog"
        tps = [TopicPartition(topic, i) for i in range(12)]
        ends = await topics.rewind(consumer, tps)
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    if r.value:
                        state = _json.loads(r.value)
                        mine = {(sid, v) for sid, facts in state["s"].items() for v in facts}
                        before = last.get(r.key, set())
                        if before - mine:
                            lines.append(
                                f"REGRESSION {r.key!r} p={r.partition}@{r.offset} "
                                f"lost {sorted(before - mine)} ts={r.timestamp}"
                            )
                        last[r.key] = before | mine
                        for sid, v in mine:
                            held.add((sid.split(":", 1)[1], v))
    finally:
        await consumer.stop()
    for name, pool in p.pools.items():
        for row in await pool.fetch(
            "SELECT stream_id, version, type, occurred_at, recorded_at FROM events "
            "WHERE type = ANY($1::text[])",
            list(short),
        ):
            if (row["stream_id"], str(row["version"])) not in held:
                lines.append(f"{name}: {dict(row)} not in any changelog record")
    memory: dict[str, set[str]] = {}
    for proc in procs:
        dump = proc.home / f"{proc.name}.dump.json"
        if dump.exists() and proc.proc is not None and proc.proc.poll() is None:
            data = _json.loads(dump.read_text())
            lines.append(f"{proc.name}: {data['partitions']}")
            for k, fs in data["items"].items():
                memory.setdefault(k, set()).update(fs)
    for key, facts in last.items():
        want = {f"{sid}#{v}" for sid, v in facts}
        have = memory.get(key.decode(), set())
        if want - have:
            lines.append(f"MEMORY LACKS {key!r}: {sorted(want - have)} (has {len(have)})")
    return "\n".join(lines)
