"""`make bench`: intake API write throughput and latency, against a raw Postgres baseline.

One run, one machine, one throw-away database `jingmin_bench_<ts>` (dropped at the end):

(a) baseline: 16 concurrent asyncpg clients, each transaction inserting one `events` row
    and one `outbox` row shaped like a real `case.received` event. Two variants: pure SQL
    (the baseline) and `PostgresEventStore.append` with one NewEvent + one OutboxMessage.
(b) throughput: 16 concurrent httpx clients (HTTP/1.1 keep-alive) POSTing /v1/cases with
    realistic Chinese bodies (a person with name and phone, so per-person encryption is
    on the path) to the intake API running in its own uvicorn process.
(c) latency: an open-loop generator sending at a fixed rate (500 req/s) on a timer,
    whatever the responses do; latency is measured from the *scheduled* send time, so a
    server that falls behind is charged for the queueing (no coordinated omission).

(b) and (c) run once per uvicorn worker count (1 and 2 by default); the headline uses
the count with the higher (b) throughput.

(d)-(h), the event pipeline, run next on a private stack (tests/bench/pipeline.py): relay
vs a raw producer, metrics processors vs a raw consumer, freshness (API call -> figure on
the exporter's /metrics), `jingmin replay` and the metrics' convergence after it, and 1,
10 and 100 bureaus at the same total rate. Every figure is also given as a ratio to a
baseline measured in the same run (`ratios` in the JSON).

Prints a table and writes bench-results/bench-<UTC timestamp>.json and
bench-results/latest.json.

This is a benchmark, not a test: pytest never collects it. Run `make bench`, or
`uv run python tests/bench/run.py --help` for the knobs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import asyncpg
import httpx
from eventkit import db, devstack
from eventkit.auth import issue_token
from eventkit.settings import KernelSettings
from eventkit.store import NewEvent, OutboxMessage, PostgresEventStore
from jingmin_intake.service import SERVICE

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import pipeline  # noqa: E402
from payloads import SCOPE, bodies  # noqa: E402

ROOT = BENCH_DIR.parents[1]
RESULTS = ROOT / "bench-results"


# ------------------------------------------------------------------------------ statistics


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    rank = math.ceil(q / 100 * len(sorted_values)) - 1
    return sorted_values[max(0, min(len(sorted_values) - 1, rank))]


def latency_summary(latencies: list[float]) -> dict[str, float | None]:
    values = sorted(latencies)

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 2)

    return {
        "p50_ms": ms(percentile(values, 50)),
        "p90_ms": ms(percentile(values, 90)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(values[-1] if values else None),
        "mean_ms": ms(sum(values) / len(values) if values else None),
    }


# ------------------------------------------------------------------------------------- CPU

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _processes() -> dict[int, tuple[str, int, float]]:
    """pid -> (command name, parent pid, CPU seconds so far), read from /proc."""
    out: dict[int, tuple[str, int, float]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return out
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        rest = stat[stat.rfind(")") + 2 :].split()
        out[int(entry.name)] = (comm, int(rest[1]), (int(rest[11]) + int(rest[12])) / _TICK)
    return out


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies over all cores since boot."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


@dataclass
class CpuProbe:
    """CPU used over one phase by the bench process, the API process tree, the PostgreSQL
    processes serving the bench database (plus the server's own background processes), and
    the rest of the machine: other sessions sharing it, and kernel time no process is
    charged with (loopback networking, about 0.1 core at saturation)."""

    dsn: str | None = None
    api_pid: int | None = None
    _start: dict[str, dict[int, float]] = field(default_factory=dict)
    _machine: tuple[int, int] = (0, 0)
    _t0: float = 0.0

    async def _postgres_pids(self) -> set[int] | None:
        if self.dsn is None:
            return None
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend' "
                "OR (datname = current_database() AND pid <> pg_backend_pid())"
            )
        except asyncpg.PostgresError:
            return None  # not allowed to see other sessions: count every postgres process
        finally:
            await conn.close()
        return {r["pid"] for r in rows}

    def _api_tree(self, procs: dict[int, tuple[str, int, float]]) -> set[int]:
        api = {self.api_pid} if self.api_pid is not None else set()
        grew = bool(api)
        while grew:
            before = len(api)
            api |= {pid for pid, (_, ppid, _) in procs.items() if ppid in api}
            grew = len(api) > before
        return api

    async def _groups(self) -> dict[str, dict[int, float]]:
        """CPU seconds so far of each process, by group."""
        pg_pids = await self._postgres_pids()
        procs = _processes()
        if pg_pids is None:
            pg_pids = {p for p, (comm, _, _) in procs.items() if comm.startswith("postgres")}
        groups = {
            "bench_client": {os.getpid()},
            "api": self._api_tree(procs),
            "postgres": pg_pids,
        }
        return {g: {p: procs[p][2] for p in pids if p in procs} for g, pids in groups.items()}

    async def start(self) -> None:
        self._start = await self._groups()
        self._machine = _machine_jiffies()
        self._t0 = time.perf_counter()

    async def stop(self) -> dict[str, Any]:
        busy1, total1 = _machine_jiffies()
        wall = time.perf_counter() - self._t0
        end = await self._groups()
        busy0, total0 = self._machine
        cores = os.cpu_count() or 1

        def delta(group: str) -> dict[int, float]:
            # A process that appeared during the phase (a new pool connection) counts from 0;
            # one that ended during it is lost, which the phases here avoid.
            start = self._start.get(group, {})
            return {p: max(0.0, cpu - start.get(p, 0.0)) / wall for p, cpu in end[group].items()}

        # Cores busy (0..cores): what each group used, the whole machine, and the rest.
        used: dict[str, Any] = {f"{g}_cores": round(sum(delta(g).values()), 2) for g in end}
        if total1 > total0:
            machine = (busy1 - busy0) / (total1 - total0) * cores
            used["other_cores"] = round(max(0.0, machine - sum(used.values())), 2)
            used["machine_cores"] = round(machine, 2)
        # Per API process (uvicorn's supervisor and its workers): is the load shared evenly?
        per_process = sorted((round(c, 2) for c in delta("api").values()), reverse=True)
        if len(per_process) > 1:
            used["api_process_cores"] = per_process
        return used


async def machine_busy(seconds: float = 1.0) -> float:
    """Cores busy over `seconds` (the bench itself is idle meanwhile)."""
    busy0, total0 = _machine_jiffies()
    await asyncio.sleep(seconds)
    busy1, total1 = _machine_jiffies()
    return (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)


async def wait_until_quiet(limit: float, within: float) -> float:
    """Wait up to `within` s for the machine to use less than `limit` cores; the last reading."""
    deadline = time.monotonic() + within
    busy = await machine_busy()
    while busy > limit and time.monotonic() < deadline:
        print(
            f"machine busy ({busy:.2f} cores used by others), waiting for it to calm down",
            flush=True,
        )
        await asyncio.sleep(4)
        busy = await machine_busy()
    return busy


# ------------------------------------------------------------------------------- load loops


P = ParamSpec("P")
T = TypeVar("T")


def without_gc_pauses(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Keep the cyclic GC out of a measurement: a full collection of the load generator's
    heap stalls its event loop for tens of ms, which an open loop would see as a burst."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            return await fn(*args, **kwargs)
        finally:
            gc.enable()
            gc.unfreeze()

    return wrapper


@without_gc_pauses
async def closed_loop(
    op: Callable[[int], Awaitable[Any]],
    clients: int,
    warmup: float,
    duration: float,
    probe: CpuProbe,
) -> dict[str, Any]:
    """`clients` tasks each calling op() back to back; counts what completes in the window.

    op returns an outcome: True (or 201) is a success, anything else an error labelled by
    its value. An exception is an error labelled by its class.
    """
    measuring = False
    stopping = False
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()

    async def client(i: int) -> None:
        while not stopping:
            t0 = time.perf_counter()
            try:
                outcome: Any = await op(i)
            except Exception as exc:
                outcome = type(exc).__name__
            if measuring:
                ok = outcome is True or outcome == 201
                outcomes["ok" if ok else str(outcome)] += 1
                if ok:
                    latencies.append(time.perf_counter() - t0)

    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    await asyncio.sleep(warmup)
    await probe.start()
    measuring = True
    t0 = time.perf_counter()
    await asyncio.sleep(duration)
    measuring = False
    elapsed = time.perf_counter() - t0
    cpu = await probe.stop()
    stopping = True
    await asyncio.gather(*tasks)
    ok = outcomes.pop("ok", 0)
    return {
        "clients": clients,
        "warmup_s": warmup,
        "duration_s": round(elapsed, 3),
        "completed": ok,
        "per_s": round(ok / elapsed, 1),
        "errors": dict(outcomes),
        **latency_summary(latencies),
        "cpu": cpu,
    }


@without_gc_pauses
async def open_loop(
    send: Callable[[int], Awaitable[Any]],
    rate: float,
    duration: float,
    drain: float,
    connections: int,
    probe: CpuProbe,
) -> dict[str, Any]:
    """Schedule one request every 1/rate s on a timer, never waiting for earlier responses.

    A fixed set of `connections` senders (one keep-alive connection each, as wrk2 does)
    takes the scheduled requests from a queue. Latency runs from the *scheduled* time, so
    time spent queued because the server fell behind counts (no coordinated omission).
    Requests still unanswered `drain` seconds after the last one was due are abandoned and
    counted as `unfinished` with the time they had waited: percentiles are then lower
    bounds.
    """
    total = int(rate * duration)
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    results: list[tuple[int, float, Any]] = []  # index, finished, outcome
    await probe.start()
    start = time.perf_counter() + 0.01

    def due(i: int) -> float:
        return start + i / rate

    async def sender(k: int) -> None:
        while (i := await queue.get()) is not None:
            try:
                outcome: Any = await send(k)
            except Exception as exc:
                outcome = type(exc).__name__
            results.append((i, time.perf_counter(), outcome))

    senders = [asyncio.create_task(sender(k)) for k in range(connections)]
    max_lag = 0.0
    for i in range(total):
        delay = due(i) - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        max_lag = max(max_lag, time.perf_counter() - due(i))
        queue.put_nowait(i)
    sent_elapsed = time.perf_counter() - start
    for _ in senders:
        queue.put_nowait(None)
    _, pending = await asyncio.wait(
        senders, timeout=max(0.0, due(total) + drain - time.perf_counter())
    )
    abandoned_at = time.perf_counter()
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    cpu = await probe.stop()

    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    ok_finish: list[float] = []
    answered: set[int] = set()
    for i, finished, outcome in results:
        answered.add(i)
        ok = outcome == 201
        outcomes["ok" if ok else str(outcome)] += 1
        latencies.append(finished - due(i))  # errors count too: the caller waited
        if ok:
            ok_finish.append(finished)
    unfinished = [i for i in range(total) if i not in answered]
    latencies += [abandoned_at - due(i) for i in unfinished]
    # Per second of schedule: is a bad tail one stall or spread evenly?
    by_second: dict[int, list[float]] = {}
    for i, finished, _ in results:
        by_second.setdefault(int(i / rate), []).append(finished - due(i))
    timeline = [
        {
            "second": sec,
            "answered": len(v),
            **{k: x for k, x in latency_summary(v).items() if k in ("p50_ms", "p99_ms", "max_ms")},
        }
        for sec, v in sorted(by_second.items())
    ]
    ok = outcomes.pop("ok", 0)
    in_window = sum(1 for t in ok_finish if t <= start + duration)
    return {
        "offered_per_s": rate,
        "duration_s": duration,
        "scheduled": total,
        "connections": connections,
        "schedule_rate_per_s": round(total / sent_elapsed, 1),
        "max_schedule_lag_ms": round(max_lag * 1000, 2),
        "completed": ok,
        # Successful answers per second while the load was offered.
        "achieved_per_s": round(in_window / duration, 1),
        "errors": dict(outcomes),
        "unfinished": len(unfinished),
        "percentiles_are_lower_bounds": bool(unfinished),
        **latency_summary(latencies),
        "cpu": cpu,
        "timeline": timeline,
    }


# ------------------------------------------------------------------------------- the API


@dataclass
class ApiServer:
    """The intake API as its own uvicorn process (tree), on the bench database."""

    workers: int
    env: dict[str, str]
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def argv(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "--app-dir",
            str(BENCH_DIR),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if self.workers > 1:
            argv += ["--workers", str(self.workers)]
        return [*argv, *self.extra_args, "intake_app:create_app"]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> None:
        self.port = devstack.free_port()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env={**self.env, **self.extra_env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=ROOT,
            )

    async def wait_ready(self, within: float = 60.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"uvicorn exited with {self.proc.returncode}:\n" + self.log_tail()
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        "uvicorn did not answer /healthz in time:\n" + self.log_tail()
                    )
                await asyncio.sleep(0.1)
            if self.workers > 1:
                # The first worker answers before the others finish their startup.
                await asyncio.sleep(1.5)

    def _cpu(self) -> float:
        procs = _processes()
        tree = {self.proc.pid} if self.proc else set()
        for _ in range(3):
            tree |= {pid for pid, (_, ppid, _) in procs.items() if ppid in tree}
        return sum(procs[p][2] for p in tree if p in procs)

    async def settle(self, idle_cores: float = 0.05, within: float = 20.0) -> float:
        """Wait until the API is idle (work from an earlier phase is done); seconds waited."""
        t0 = time.monotonic()
        before = self._cpu()
        while time.monotonic() - t0 < within:
            await asyncio.sleep(0.5)
            now = self._cpu()
            if (now - before) / 0.5 < idle_cores:
                break
            before = now
        return time.monotonic() - t0

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # start_new_session made the process group ours: its id is the uvicorn pid.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=3)  # abandoned requests of (c) need not finish
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _client(base_url: str, token: str, connections: int = 1) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        http1=True,
        http2=False,
        timeout=httpx.Timeout(30.0),
        headers={"Authorization": f"Bearer {token}"},
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


_JSON = {"Content-Type": "application/json; charset=utf-8"}


@contextlib.asynccontextmanager
async def http_clients(base_url: str, token: str, n: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """n clients of one keep-alive connection each, already connected.

    One client per connection, not one client with n connections: httpx's pool rescans
    every queued request against every connection on each request and response, which
    costs the load generator a whole core at 64 connections.
    """
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(_client(base_url, token)) for _ in range(n)]
        # One at a time, with a pause: a burst of connections is accepted in one go by
        # whichever uvicorn worker wakes first, leaving the other workers idle.
        for c in clients:
            with contextlib.suppress(httpx.HTTPError):
                await c.get("/healthz")
            await asyncio.sleep(0.01)
        yield clients


def _poster(
    clients: list[httpx.AsyncClient], body_iter: Iterator[dict[str, Any]]
) -> Callable[[int], Awaitable[int]]:
    async def post(i: int) -> int:
        # Encoded like a browser or gateway sends it: UTF-8 JSON, Chinese unescaped.
        content = json.dumps(next(body_iter), ensure_ascii=False).encode()
        response = await clients[i].post("/v1/cases", content=content, headers=_JSON)
        return response.status_code

    return post


async def bench_api(
    server: ApiServer, token: str, dsn: str, args: argparse.Namespace, seed: int
) -> dict[str, Any]:
    probe = CpuProbe(dsn=dsn, api_pid=server.proc.pid if server.proc else None)
    async with http_clients(server.base_url, token, args.clients) as clients:
        closed = await closed_loop(
            _poster(clients, bodies(seed)), args.clients, args.warmup, args.duration, probe
        )
    async with http_clients(server.base_url, token, args.open_connections) as clients:
        # The latency the API gives when it is not overloaded: half its (b) throughput.
        # Run before (c): requests (c) abandons keep the server busy for a while.
        half = None
        if args.half_duration > 0 and closed["per_s"] > 0:
            await server.settle()
            half = await open_loop(
                _poster(clients, bodies(seed + 2)),
                round(closed["per_s"] / 2, 1),
                args.half_duration,
                args.drain,
                args.open_connections,
                probe,
            )
        await server.settle()
        opened = await open_loop(
            _poster(clients, bodies(seed + 1)),
            args.rate,
            args.rate_duration,
            args.drain,
            args.open_connections,
            probe,
        )
    return {
        "uvicorn": {
            "argv": server.argv[1:],
            "workers": server.workers,
            "loop": "auto (uvloop)",
            "http": "auto (httptools)",
            "access_log": "--no-access-log" not in server.extra_args,
            "env": {
                "BENCH_DSN": "<bench database>",
                "JINGMIN_HOME": "<temp dir>",
                **server.extra_env,
            },
        },
        "closed_loop": closed,
        "open_loop": opened,
        "open_loop_half_capacity": half,
    }


# ------------------------------------------------------------------------------ baseline


@dataclass
class Template:
    """A real case.received event row and its outbox row, taken from the API's own write."""

    type: str
    bureau: str
    data: str
    metadata: str
    ce_type: str
    topic: str
    payload: str
    headers: str


async def sample_rows(dsn: str) -> Template:
    conn = await asyncpg.connect(dsn)
    try:
        ev = await conn.fetchrow(
            "SELECT type, bureau, data::text AS data, metadata::text AS "
            "metadata FROM events ORDER BY global_position LIMIT 1"
        )
        ob = await conn.fetchrow(
            "SELECT type, topic, payload::text AS payload, headers::text "
            "AS headers FROM outbox ORDER BY id LIMIT 1"
        )
    finally:
        await conn.close()
    if ev is None or ob is None:
        raise RuntimeError("the sample POST wrote no event or outbox row")
    return Template(
        ev["type"],
        ev["bureau"],
        ev["data"],
        ev["metadata"],
        ob["type"],
        ob["topic"],
        ob["payload"],
        ob["headers"],
    )


INSERT_EVENT = """INSERT INTO events (stream_id, stream_type, version, event_id, type,
        schema_version, bureau, data, metadata, occurred_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10)"""
INSERT_OUTBOX = """INSERT INTO outbox (event_id, aggregate_type, aggregate_id, type, topic,
        payload, headers)
    VALUES ($1, $2, $3, $4, $5, $6::json, $7::json)"""


async def bench_baseline(dsn: str, t: Template, args: argparse.Namespace) -> dict[str, Any]:
    pool = await db.create_pool(dsn, min_size=args.clients, max_size=args.clients)
    probe = CpuProbe(dsn=dsn)
    try:

        async def raw_sql(_i: int) -> bool:
            stream, event_id = uuid.uuid4().hex, uuid.uuid4()
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    INSERT_EVENT,
                    stream,
                    "case",
                    1,
                    event_id,
                    t.type,
                    1,
                    t.bureau,
                    t.data,
                    t.metadata,
                    datetime.now(UTC),
                )
                await conn.execute(
                    INSERT_OUTBOX,
                    str(event_id),
                    "case",
                    stream,
                    t.ce_type,
                    t.topic,
                    t.payload,
                    t.headers,
                )
            return True

        store = PostgresEventStore(pool)
        data, metadata = json.loads(t.data), json.loads(t.metadata)
        payload, headers = json.loads(t.payload), json.loads(t.headers)

        async def store_append(_i: int) -> bool:
            stream = uuid.uuid4().hex
            event = NewEvent(
                type=t.type,
                data=data,
                occurred_at=datetime.now(UTC),
                bureau=t.bureau,
                metadata=metadata,
            )
            message = OutboxMessage(
                event_id=event.event_id,
                aggregate_type="case",
                aggregate_id=stream,
                type=t.ce_type,
                topic=t.topic,
                payload=payload,
                headers=headers,
            )
            await store.append(stream, "case", 0, [event], [message])
            return True

        sql = await closed_loop(raw_sql, args.clients, args.warmup, args.duration, probe)
        sql["statements"] = "BEGIN; INSERT events; INSERT outbox; COMMIT"
        appended = await closed_loop(store_append, args.clients, args.warmup, args.duration, probe)
        appended["statements"] = (
            "BEGIN; SELECT max(version); SAVEPOINT; INSERT events "
            "RETURNING; RELEASE; INSERT outbox (executemany); COMMIT"
        )
        return {
            "sql": sql,
            "store_append": appended,
            "row_bytes": {
                "event_data": len(t.data.encode()),
                "outbox_payload": len(t.payload.encode()),
                "outbox_headers": len(t.headers.encode()),
            },
        }
    finally:
        await pool.close()


# ------------------------------------------------------------------------------- machine


async def machine_info(server_url: str, dsn: str) -> dict[str, Any]:
    import uvicorn

    conn = await asyncpg.connect(dsn)
    try:
        pg = {
            "version": await conn.fetchval("SHOW server_version"),
            "synchronous_commit": await conn.fetchval("SHOW synchronous_commit"),
            "fsync": await conn.fetchval("SHOW fsync"),
            "max_connections": int(await conn.fetchval("SHOW max_connections")),
        }
    finally:
        await conn.close()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    host = server_url.split("@")[-1].split("/")[0]
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgres": pg,
        "postgres_host": host,
        "uvicorn": uvicorn.__version__,
        "httpx": httpx.__version__,
        "asyncpg": asyncpg.__version__,
        "load_average_1m_at_start": load,
    }


# ---------------------------------------------------------------------------------- report


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}{unit}"
    return f"{v:,}{unit}"


def _cpu(c: dict[str, Any]) -> str:
    split = c.get("api_process_cores")
    return (
        f"{c.get('bench_client_cores', 0):.2f}/{c.get('api_cores', 0):.2f}/"
        f"{c.get('postgres_cores', 0):.2f}/{c.get('other_cores', 0):.2f} "
        f"({c.get('machine_cores', 0):.2f})"
        + (f" api={'+'.join(f'{x:.2f}' for x in split if x >= 0.01)}" if split else "")
    )


def print_table(result: dict[str, Any], path: Path) -> None:
    m = result["machine"]
    cfg = result["config"]
    print()
    print(
        f"Jingmin intake benchmark {result['timestamp']}: {m['cores']} cores, "
        f"Python {m['python']}, PostgreSQL {m['postgres']['version']} "
        f"({m['postgres_host']}), uvicorn {m['uvicorn']}"
    )
    print(
        f"{cfg['clients']} clients, {cfg['warmup_s']} s warm-up + {cfg['duration_s']} s "
        f"measured; open loop {cfg['rate_per_s']} req/s for {cfg['rate_duration_s']} s"
    )
    print()
    head = (
        f"{'phase':48} {'rate':>14} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'errors':>7}  CPU client/api/pg/other (all)"
    )
    print(head)
    print("-" * len(head))

    def row(label: str, rate: str, r: dict[str, Any]) -> None:
        errors = sum(r.get("errors", {}).values()) + r.get("unfinished", 0)
        print(
            f"{label:48} {rate:>14} {_fmt(r['p50_ms']):>8} {_fmt(r['p99_ms']):>8} "
            f"{_fmt(r['max_ms']):>8} {errors:>7}  {_cpu(r['cpu'])}"
        )

    b = result["baseline"]
    row("(a) raw SQL: INSERT events + outbox (base)", f"{_fmt(b['sql']['per_s'])} tx/s", b["sql"])
    row(
        "(a) PostgresEventStore.append",
        f"{_fmt(b['store_append']['per_s'])} tx/s",
        b["store_append"],
    )
    for api in result["api"].values():
        w = api["uvicorn"]["workers"]
        workers = f"{w} worker{'s' if w > 1 else ''}"
        row(
            f"(b) POST /v1/cases, {workers}",
            f"{_fmt(api['closed_loop']['per_s'])} req/s",
            api["closed_loop"],
        )
        half = api.get("open_loop_half_capacity")
        if half:
            row(
                f"(c') {half['offered_per_s']:.0f} req/s open loop (half of b), {workers}",
                f"{_fmt(half['achieved_per_s'])} req/s",
                half,
            )
        o = api["open_loop"]
        row(
            f"(c) {o['offered_per_s']:.0f} req/s open loop, {workers}",
            f"{_fmt(o['achieved_per_s'])} req/s",
            o,
        )
        if o["unfinished"]:
            print(
                f"{'':48} {o['unfinished']} of {o['scheduled']} requests unanswered "
                f"{cfg['drain_s']} s after the last was due: percentiles are lower bounds"
            )
    h = result["headline"]
    print()
    print(f"headline: {h['workers']} uvicorn worker(s) ({h['why']})")
    print(
        f"  baseline {_fmt(h['baseline_tx_per_s'])} tx/s, API {_fmt(h['api_req_per_s'])} req/s"
        f" -> ratio {h['ratio']:.2f} (target >= {h['ratio_target']}): "
        f"{'PASS' if h['ratio_pass'] else 'FAIL'}"
    )
    print(
        f"  (b) p50 {_fmt(h['b_p50_ms'])} ms, p99 {_fmt(h['b_p99_ms'])} ms;  "
        f"(c) at {h['offered_per_s']:.0f} req/s achieved {_fmt(h['c_achieved_per_s'])} req/s,"
        f" p50 {_fmt(h['c_p50_ms'])} ms, p99 {_fmt(h['c_p99_ms'])} ms, "
        f"max {_fmt(h['c_max_ms'])} ms (target p99 < {h['p99_target_ms']} ms): "
        f"{'PASS' if h['p99_pass'] else 'FAIL'}"
    )
    if h.get("half_rate_per_s"):
        print(
            f"  (c') not overloaded, at {h['half_rate_per_s']:.0f} req/s: p50 "
            f"{_fmt(h['half_p50_ms'])} ms, p99 {_fmt(h['half_p99_ms'])} ms"
        )
    print(
        f"  CPU: cores busy during the phase: bench process (load generator) / API process "
        f"tree / postgres serving the bench database / everything else; (all) of "
        f"{m['cores']}"
    )
    # "other" also holds kernel time no process is charged with (loopback softirq), about
    # 0.1 core at saturation; more than that is someone else using the machine.
    noisy = [r for r in _phases(result) if r["cpu"].get("other_cores", 0) > 0.3]
    if noisy:
        print(
            f"  WARNING: other processes used up to "
            f"{max(r['cpu']['other_cores'] for r in noisy):.2f} cores during {len(noisy)} "
            f"phase(s): the machine was shared, those numbers are too low"
        )


def _phases(result: dict[str, Any]) -> list[dict[str, Any]]:
    out = [result["baseline"]["sql"], result["baseline"]["store_append"]]
    for api in result["api"].values():
        out += [
            r for k in ("closed_loop", "open_loop", "open_loop_half_capacity") if (r := api.get(k))
        ]
    return out


def headline(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    apis = result["api"]
    best_key = max(apis, key=lambda k: apis[k]["closed_loop"]["per_s"])
    best = apis[best_key]
    base = result["baseline"]["sql"]["per_s"]
    api_rate = best["closed_loop"]["per_s"]
    o = best["open_loop"]
    p99 = o["p99_ms"]
    ratio = api_rate / base if base else 0.0
    # The rate counts as held when nearly every scheduled request succeeded.
    held = o["completed"] >= 0.99 * o["scheduled"]
    return {
        "workers": best["uvicorn"]["workers"],
        "why": "higher (b) throughput" if len(apis) > 1 else "the only count measured",
        "baseline_tx_per_s": base,
        "api_req_per_s": api_rate,
        "ratio": round(ratio, 3),
        "ratio_target": args.target_ratio,
        "ratio_pass": ratio >= args.target_ratio,
        "b_p50_ms": best["closed_loop"]["p50_ms"],
        "b_p99_ms": best["closed_loop"]["p99_ms"],
        "offered_per_s": o["offered_per_s"],
        "c_achieved_per_s": o["achieved_per_s"],
        "c_p50_ms": o["p50_ms"],
        "c_p99_ms": p99,
        "c_max_ms": o["max_ms"],
        "p99_target_ms": args.target_p99_ms,
        "p99_pass": bool(held and p99 is not None and p99 < args.target_p99_ms),
        "half_rate_per_s": (half := best.get("open_loop_half_capacity") or {}).get("offered_per_s"),
        "half_p50_ms": half.get("p50_ms"),
        "half_p99_ms": half.get("p99_ms"),
        "max_other_cores": max(r["cpu"].get("other_cores", 0) for r in _phases(result)),
    }


# ------------------------------------------------------------------------------------ main


async def main(args: argparse.Namespace) -> int:
    stamp = datetime.now(UTC)
    ts = stamp.strftime("%Y%m%dT%H%M%SZ")
    home = Path(tempfile.mkdtemp(prefix="jingmin-bench-"))
    settings = KernelSettings(jingmin_home=home)
    endpoint = devstack.resolve_postgres(settings)
    server_url = endpoint.address
    database = f"jingmin_bench_{stamp.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}"
    dsn = db.database_dsn(server_url, database)
    servers: list[ApiServer] = []
    t_start = time.perf_counter()
    try:
        busy = await wait_until_quiet(args.quiet_limit, args.quiet_wait)
        if busy > args.quiet_limit:
            print(
                f"WARNING: other processes keep {busy:.2f} cores busy: expect low, noisy numbers",
                flush=True,
            )
        print(f"bench database {database} on {server_url.split('@')[-1]}", flush=True)
        await db.ensure_database(server_url, database)
        await asyncio.to_thread(db.migrate, dsn, SERVICE.migrations)
        token = issue_token(settings, subject="bench", roles=["intake_operator"], scopes=[SCOPE])
        env = {k: v for k, v in os.environ.items() if k != "OTEL_EXPORTER_OTLP_ENDPOINT"}
        env.update(
            BENCH_DSN=dsn,
            DATABASE_URL=server_url,
            JINGMIN_HOME=str(home),
            PYTHONPATH=os.pathsep.join(filter(None, [str(BENCH_DIR), env.get("PYTHONPATH")])),
        )
        result: dict[str, Any] = {
            "timestamp": stamp.isoformat().replace("+00:00", "Z"),
            "machine": {
                **await machine_info(server_url, dsn),
                "busy_cores_before_start": round(busy, 2),
            },
            "config": {
                "clients": args.clients,
                "warmup_s": args.warmup,
                "duration_s": args.duration,
                "rate_per_s": args.rate,
                "rate_duration_s": args.rate_duration,
                "drain_s": args.drain,
                "open_loop_max_connections": args.open_connections,
                "workers": args.workers,
                "database": database,
                "uvicorn_extra_args": args.uvicorn_arg,
                "api_extra_env": dict(args.api_env),
                "body": "new person (unique phone) per request, Chinese text; "
                "see tests/bench/payloads.py",
            },
            "api": {},
        }
        for n, workers in enumerate([] if args.skip_ingest else args.workers):
            server = ApiServer(
                workers,
                env,
                home / f"uvicorn-{workers}.log",
                extra_args=args.uvicorn_arg,
                extra_env=dict(args.api_env),
            )
            servers.append(server)
            print(f"starting uvicorn with {workers} worker(s)", flush=True)
            server.launch()
            await server.wait_ready()
            if n == 0:
                # One case per body shape, to check they are all accepted and to take a real
                # event and outbox row as the baseline's template.
                async with _client(server.base_url, token) as client:
                    sample = bodies(seed=9)
                    for _ in range(8):
                        r = await client.post("/v1/cases", json=next(sample))
                        if r.status_code != 201:
                            raise RuntimeError(f"sample POST got {r.status_code}: {r.text}")
                template = await sample_rows(dsn)
                print("(a) baseline: raw SQL, then PostgresEventStore.append", flush=True)
                result["baseline"] = await bench_baseline(dsn, template, args)
            print(
                f"(b) closed loop, (c) open loop at {args.rate:.0f} req/s; {workers} worker(s)",
                flush=True,
            )
            result["api"][f"workers_{workers}"] = await bench_api(
                server, token, dsn, args, seed=3 * n
            )
            server.stop()
        if result["api"]:
            result["headline"] = headline(result, args)
        if not args.skip_pipeline:
            print("pipeline phases on a private stack (tests/bench/pipeline.py)", flush=True)
            result["pipeline"] = await pipeline.run_pipeline(args)
        result["ratios"] = pipeline.ratios(result)
        result["wall_seconds"] = round(time.perf_counter() - t_start, 1)
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"bench-{ts}.json"
        text = json.dumps(result, ensure_ascii=False, indent=2) + "\n"
        path.write_text(text, encoding="utf-8")
        (RESULTS / "latest.json").write_text(text, encoding="utf-8")
        if result["api"]:
            print_table(result, path)
        if "pipeline" in result:
            pipeline.print_table(result)
        print(f"results: {path.relative_to(ROOT)} (and bench-results/latest.json)")
        h = result.get("headline")
        return 1 if args.strict and h and not (h["ratio_pass"] and h["p99_pass"]) else 0
    finally:
        for server in servers:
            server.stop()
        with contextlib.suppress(Exception):
            await db.drop_database(server_url, database)
        endpoint.stop()
        shutil.rmtree(home, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--clients", type=int, default=16, help="concurrent clients in (a) and (b)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring (a), (b)")
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds of (a), (b)")
    p.add_argument("--rate", type=float, default=500.0, help="offered requests/s in (c)")
    p.add_argument("--rate-duration", type=float, default=15.0, help="seconds of (c)")
    p.add_argument(
        "--drain", type=float, default=2.0, help="seconds (c) waits for answers after its last send"
    )
    p.add_argument(
        "--open-connections",
        type=int,
        default=64,
        help="keep-alive connections (senders) of the open-loop generator (c)",
    )
    p.add_argument(
        "--workers",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2],
        help="uvicorn worker counts to measure, comma-separated",
    )
    p.add_argument(
        "--half-duration",
        type=float,
        default=6.0,
        help="seconds of the extra open loop at half the (b) throughput (0: skip)",
    )
    p.add_argument(
        "--uvicorn-arg",
        action="append",
        default=[],
        help="extra uvicorn option, repeatable (e.g. --uvicorn-arg=--no-access-log)",
    )
    p.add_argument(
        "--api-env",
        action="append",
        default=[],
        type=lambda s: s.split("=", 1),
        metavar="KEY=VALUE",
        help="extra environment of the API, repeatable",
    )
    p.add_argument("--skip-ingest", action="store_true", help="skip (a)-(c), the ingest phases")
    p.add_argument("--skip-pipeline", action="store_true", help="skip (d)-(h), the pipeline phases")
    p.add_argument(
        "--relay-messages", type=int, default=20_000, help="(d) outbox backlog the relay drains"
    )
    p.add_argument("--templates", type=int, default=40, help="template cases made through the API")
    p.add_argument(
        "--fresh-rate",
        type=float,
        default=200.0,
        help="(f) cases/s while measuring (one event each: the target is p99 < 5 s at 200/s)",
    )
    p.add_argument(
        "--fresh-seconds", type=float, default=20.0, help="(f) seconds of load (0: skip)"
    )
    p.add_argument(
        "--fresh-poll", type=float, default=0.1, help="(f) seconds between /metrics scrapes"
    )
    p.add_argument(
        "--replay-events",
        type=int,
        default=100_000,
        help="(g) stored events replayed (the target is 1000000 in < 5 min; 0: skip)",
    )
    p.add_argument(
        "--processors",
        type=int,
        default=1,
        help="(e)-(g) metrics processors the metrics worker runs (METRICS_PROCESSORS)",
    )
    p.add_argument(
        "--rebuild",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="(g) rebuild: forget the metrics state and recompute from offset 0 (the target "
        "is 1000000 stored events to zero differences in < 2 min)",
    )
    p.add_argument(
        "--converge-timeout",
        type=float,
        default=900.0,
        help="(g) seconds to wait for the processors to apply every replayed event",
    )
    p.add_argument(
        "--verify-timeout",
        type=float,
        default=90.0,
        help="(e), (g) seconds `jingmin verify metrics` may take (its SQL grows with the events)",
    )
    p.add_argument(
        "--scale-bureaus",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[1, 10, 100],
        help="(h) bureau counts, comma-separated (empty: skip)",
    )
    p.add_argument("--scale-rate", type=float, default=20.0, help="(h) cases/s in all")
    p.add_argument("--scale-seconds", type=float, default=15.0, help="(h) seconds per step")
    p.add_argument("--target-ratio", type=float, default=0.5)
    p.add_argument("--target-p99-ms", type=float, default=50.0)
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="seconds to wait for other processes to leave the CPU before starting",
    )
    p.add_argument(
        "--quiet-limit",
        type=float,
        default=0.25,
        help="cores others may use for the machine to count as quiet",
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    try:
        import uvloop  # the API runs on uvloop too; the load generator should not be slower
    except ImportError:
        sys.exit(asyncio.run(main(parse_args())))
    else:
        sys.exit(uvloop.run(main(parse_args())))
