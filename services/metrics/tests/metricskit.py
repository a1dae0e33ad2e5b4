"""Metrics test helpers (imported as `metricskit`, a name no other test folder uses): the
platform in one process, processors as real OS processes (so a test can `kill -9` one)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import yaml
from aiokafka import ConsumerRecord
from eventkit import devstack, kafka
from eventkit.auth import issue_token
from eventkit.consumer import IdempotentConsumer
from eventkit.kafka import json_bytes, record_headers
from eventkit.relay import OutboxRelay
from eventkit.settings import KernelSettings
from eventkit.testing import DatabaseFactory

INTAKE_TOPIC = "intake.case.events.v1"
CALLBACK_TOPIC = "visits.callback.events.v1"
VISIT_TOPIC = "visits.visit.events.v1"
COMPLAINT_TOPICS = ("complaints.complaint.events.v1", "complaints.supervision.events.v1")
ROOT = Path(__file__).resolve().parents[3]
# The metrics database of the `platform` in use: processors started without one of their
# own (METRICS_DATABASE_DSN in `env`) keep their state there.
_metrics_dsn: str | None = None


class ProcessorProcess:
    """One metrics processor (`python -m jingmin_metrics.stream worker`) as a child process.

    Supervised as the metrics worker loop supervises it in production
    (`jingmin_metrics.stream.runner.supervise`): a processor that exits on its own is started
    again. faust can crash on aiokafka's fetcher KeyError during a rebalance
    (robinhood/aiokafka#19, open upstream); the figures stay exact because each batch and
    its positions commit in one PostgreSQL transaction, and a restart resumes from them.
    Only `kill()` and `stop()` end it for good. Restarts are counted and logged.
    """

    def __init__(
        self,
        bootstrap: str,
        app_id: str,
        home: Path,
        name: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.bootstrap, self.app_id, self.home, self.name = bootstrap, app_id, home, name
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / f"{name}.log"
        self.restarts = 0
        self._ended = threading.Event()  # set by kill() and stop(): no restart after them
        self._lock = threading.Lock()  # a restart and kill()/stop() never interleave

    def start(self) -> ProcessorProcess:
        self._spawn()
        threading.Thread(target=self._supervise, name=f"supervise-{self.name}", daemon=True).start()
        return self

    def _supervise(self) -> None:
        while not self._ended.is_set():
            proc = self.proc
            assert proc is not None
            proc.wait()
            if self._ended.wait(1.0):  # the runner waits a moment before a restart too
                return
            with self._lock:
                if self._ended.is_set():
                    return
                self.restarts += 1
                with open(self.log, "ab") as out:
                    out.write(f"--- exited with {proc.returncode}; restarting ---\n".encode())
                self._spawn()

    def _spawn(self) -> None:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "METRICS_APP_ID": self.app_id,
            "METRICS_FAUST_DATADIR": str(self.home / f"{self.name}-{uuid.uuid4().hex[:6]}"),
            "METRICS_PROCESSOR_PORT": "0",
            "PYTHONUNBUFFERED": "1",
            "METRICS_DEBUG_DUMP": str(self.home / f"{self.name}.dump.json"),
            **({"METRICS_DATABASE_DSN": _metrics_dsn} if _metrics_dsn else {}),
            **self.env,
        }
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jingmin_metrics.stream", "worker", "-l", "info"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()

    def kill(self) -> None:
        """`kill -9`: no shutdown, no final commit, no flush."""
        with self._lock:
            self._ended.set()
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        with self._lock:
            self._ended.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


@dataclass
class Route:
    source: str
    topics: tuple[str, ...]
    consumer: IdempotentConsumer
    seen: set[int] = field(default_factory=set)


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, topic: str, **kw: Any) -> Any:
        self.sent.append((topic, kw))

        async def acked() -> None:
            return None

        return acked()


@dataclass
class Platform:
    """intake, visits and complaints APIs on fresh databases; their consumers fed by an
    in-process bridge; their relays publishing to the metrics broker."""

    settings: KernelSettings
    clients: dict[str, httpx.AsyncClient]
    pools: dict[str, asyncpg.Pool]
    dsns: dict[str, str]
    metrics_dsn: str
    routes: list[Route]
    dead: DeadLetters
    bootstrap: str

    async def pump(self) -> int:
        moved = 0
        for route in self.routes:
            rows = await self.pools[route.source].fetch(
                """SELECT id, topic, aggregate_id, payload::text AS p, headers::text AS h
                   FROM outbox WHERE topic = ANY($1::text[]) ORDER BY id""",
                list(route.topics),
            )
            for row in rows:
                if row["id"] in route.seen:
                    continue
                route.seen.add(row["id"])
                value = json_bytes(json.loads(row["p"]))
                key = row["aggregate_id"].encode()
                record = ConsumerRecord(
                    topic=row["topic"], partition=0, offset=row["id"], timestamp=0,
                    timestamp_type=0, key=key, value=value, checksum=None,
                    serialized_key_size=len(key), serialized_value_size=len(value),
                    headers=record_headers(json.loads(row["h"])),
                )  # fmt: skip
                await route.consumer.handle(record)
                moved += 1
        return moved

    async def bridge(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not await self.pump():
                try:
                    await asyncio.wait_for(stop.wait(), 0.05)
                except TimeoutError:
                    pass

    async def pending(self) -> int:
        """Outbox rows the relays have not published yet."""
        total = 0
        for pool in self.pools.values():
            total += await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return int(total)

    async def redeliver(self) -> int:
        """Publish every outbox row again: what a relay that crashed before marking its rows,
        or `jingmin replay`, sends (the same ce_id, body and key)."""
        producer = kafka.producer(self.settings, self.bootstrap)
        await producer.start()
        sent = 0
        try:
            for pool in self.pools.values():
                rows = await pool.fetch(
                    """SELECT topic, aggregate_id, payload::text AS p, headers::text AS h
                       FROM outbox ORDER BY id"""
                )
                futures = [
                    await producer.send(
                        row["topic"],
                        value=json_bytes(json.loads(row["p"])),
                        key=row["aggregate_id"].encode(),
                        headers=record_headers(json.loads(row["h"])),
                    )
                    for row in rows
                ]
                await asyncio.gather(*futures)
                sent += len(futures)
        finally:
            await producer.stop()
        return sent


@asynccontextmanager
async def platform(
    fresh_database: DatabaseFactory, home: Path, bootstrap: str
) -> AsyncIterator[Platform]:
    from eventkit.chain import chain_key
    from eventkit.personal import Vault
    from eventkit.topics import ensure_topics
    from jingmin_complaints.application.consumers import SourceHandler
    from jingmin_complaints.application.consumers import build_consumer as complaints_consumer
    from jingmin_complaints.entrypoints.app import create_app as complaints_app
    from jingmin_complaints.service import SERVICE as COMPLAINTS
    from jingmin_intake.application.visits_consumer import build_consumer as intake_consumer
    from jingmin_intake.entrypoints.app import create_app as intake_app
    from jingmin_intake.service import SERVICE as INTAKE
    from jingmin_metrics.service import SERVICE as METRICS
    from jingmin_visits.application.complaints_consumer import (
        build_consumer as visits_from_complaints,
    )
    from jingmin_visits.application.intake_consumer import build_consumer as visits_from_intake
    from jingmin_visits.entrypoints.app import create_app as visits_app
    from jingmin_visits.service import SERVICE as VISITS

    settings = KernelSettings(
        jingmin_home=home,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        kafka_bootstrap_servers=bootstrap,
    )
    specs = {"intake": INTAKE, "visits": VISITS, "complaints": COMPLAINTS}
    await ensure_topics(
        bootstrap,
        [t for s in (*specs.values(), METRICS) for t in devstack.service_topics(s)],
    )
    factories = {"intake": intake_app, "visits": visits_app, "complaints": complaints_app}
    dsns = {name: await fresh_database([spec.migrations]) for name, spec in specs.items()}
    global _metrics_dsn
    _metrics_dsn = metrics_dsn = await fresh_database([METRICS.migrations])
    # What `jingmin verify metrics` reads the streamed figures from.
    dsns["metrics"] = metrics_dsn
    async with AsyncExitStack() as stack:
        pools: dict[str, asyncpg.Pool] = {}
        for name, dsn in dsns.items():
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=6)
            stack.push_async_callback(pool.close)
            pools[name] = pool
        clients: dict[str, httpx.AsyncClient] = {}
        for name, factory in factories.items():
            app = factory(settings, dsn=dsns[name])
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=f"http://{name}.test", timeout=60
            )
            await stack.enter_async_context(client)
            clients[name] = client
        dead = DeadLetters()
        fast = {"retry_delay": 0.01}

        def source_handler() -> Any:
            return SourceHandler(chain_key(settings), Vault(pools["complaints"], settings))

        routes = [
            Route("intake", (INTAKE_TOPIC,), visits_from_intake(pools["visits"], dead, **fast)),
            Route("complaints", COMPLAINT_TOPICS,
                  visits_from_complaints(pools["visits"], dead, **fast)),
            Route("visits", (VISIT_TOPIC,),
                  intake_consumer(pools["intake"], dead, settings, **fast)),
            Route("intake", (INTAKE_TOPIC,),
                  complaints_consumer(pools["complaints"], dead, source_handler(), **fast)),
            Route("visits", (CALLBACK_TOPIC,),
                  complaints_consumer(pools["complaints"], dead, source_handler(), **fast)),
        ]  # fmt: skip
        plat = Platform(settings, clients, pools, dsns, metrics_dsn, routes, dead, bootstrap)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(plat.bridge(stop))]
        for name, pool in pools.items():
            relay = OutboxRelay(
                pool,
                lambda: kafka.producer(settings, bootstrap),
                service=name,
                poll_interval=0.2,
            )
            tasks.append(asyncio.create_task(relay.run(stop)))
        try:
            yield plat
        finally:
            _metrics_dsn = None
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)


PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@asynccontextmanager
async def prometheus_server(home: Path, config: dict[str, Any]) -> AsyncIterator[str]:
    """A real Prometheus (the Debian package's) with `config`, on a free port, its data in
    `home`; yields its base URL as soon as it is started (callers wait for what they need)."""
    port = devstack.free_port()
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = await asyncio.to_thread(open, home / "prometheus.log", "wb")
    proc = subprocess.Popen(  # noqa: ASYNC220 - a long-running server, not awaited
        [PROMETHEUS, f"--config.file={home / 'prometheus.yml'}",
         f"--storage.tsdb.path={home / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


# ---- the resident survey (民意调查) through the visits API

BEIJING = ZoneInfo("Asia/Shanghai")


def _daytime() -> str:
    """The latest 10:00 in Beijing that has passed: outside the quiet hours."""
    now = datetime.now(BEIJING)
    day = now.date() if now.hour >= 10 else now.date() - timedelta(days=1)
    return datetime.combine(day, time(10), BEIJING).isoformat()


def _frame(rows: int, seed: int) -> str:
    """A frame with names and numbers; locals are two thirds of it."""
    lines = ["name,phone,age_band,sex,residence"]
    for i in range(rows):
        lines.append(
            f"居民{seed}{i:03d},139{seed:02d}00{i:04d},{('18-29', '30-44', '45-59', '60+')[i % 4]},"
            f"{'female' if i % 2 else 'male'},{'local' if i % 3 else 'non_local'}"
        )
    return "\n".join(lines) + "\n"


def _headers(p: Platform, *roles: str, scopes: tuple[str, ...]) -> dict[str, str]:
    token = issue_token(p.settings, subject="adm01", roles=list(roles), scopes=list(scopes))
    return {"Authorization": f"Bearer {token}"}


async def record_survey_wave(p: Platform, bureau: str, stations: tuple[str, ...]) -> str:
    """A resident survey wave recorded through the visits API: a frame per station, a draw,
    and fieldwork with every outcome (partials completed later or refused afterwards),
    non-locals answering less than locals. Returns the wave id."""
    visits = p.clients["visits"]
    admin = _headers(p, "admin", scopes=(bureau,))
    today = datetime.now(BEIJING).date()
    r = await visits.post(
        "/v1/survey-waves",
        json={
            "bureau": bureau,
            "title": "2026年第四季度群众安全感和满意度调查",
            "period_start": (today - timedelta(days=2)).isoformat(),
            "period_end": (today + timedelta(days=30)).isoformat(),
            "precision": 0.1,
            "expected_response_rate": 0.6,
            "modes": ["phone", "in_person"],
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    wave_id: str = r.json()["wave_id"]
    at = _daytime()
    for k, station in enumerate(stations):
        r = await visits.post(
            f"/v1/survey-waves/{wave_id}/frames/{station}",
            content=_frame(90 + 30 * k, k).encode(),
            headers={**admin, "Content-Type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        r = await visits.post(
            f"/v1/survey-waves/{wave_id}/draws", json={"station": station, "seed": 11 + k},
            headers=admin,
        )  # fmt: skip
        assert r.status_code == 200, r.text
        r = await visits.get(
            f"/v1/survey-waves/{wave_id}/sample", params={"station": station}, headers=admin
        )
        assert r.status_code == 200, r.text
        officer = _headers(p, "officer", scopes=(station,))
        for i, unit in enumerate(r.json()["items"][:60]):
            sat = ("satisfied", "basically_satisfied", "dissatisfied")[i % 3]
            sec = ("safe", "basically_safe", "not_very_safe", "unsafe")[i % 4]
            script: list[dict[str, Any]] = [
                [{"outcome": "completed", "answers": {"security": sec, "satisfaction": sat}}],
                [{"outcome": "non_contact"}, {"outcome": "completed",
                  "answers": {"security": sec, "satisfaction": sat}}],
                [{"outcome": "partial", "answers": {"security": sec}},
                 {"outcome": "completed", "answers": {"security": "safe", "satisfaction": sat}}],
                [{"outcome": "partial", "answers": {"satisfaction": sat}}, {"outcome": "refused"}],
                [{"outcome": "refused"}],
                [{"outcome": "ineligible"}],
                [{"outcome": "unknown_eligibility"}, {"outcome": "non_contact"}],
            ][i % 7]  # fmt: skip
            # Non-locals answer less: the respondents over-represent locals.
            if unit.get("residence") == "non_local" and i % 2:
                script = [{"outcome": "non_contact"}]
            for attempt in script:
                r = await visits.post(
                    f"/v1/survey-waves/{wave_id}/units/{unit['unit_id']}/attempts",
                    json={"mode": "phone", "occurred_at": at, **attempt},
                    headers=officer,
                )
                assert r.status_code in (200, 409), r.text  # 409: an opted-out unit
    return wave_id
