"""A private Jingmin platform in a temporary directory, with every process ours to kill.

Its own embedded PostgreSQL and its own Tansu broker, each on a free port (the machine's
shared PostgreSQL on 5432 and anything on the default service ports are never touched),
every installed service prepared (database, migrations, topics), and each service's API,
relay and workers as separate OS processes started from `devstack.dev_processes`, each in
its own session so that a signal reaches exactly the process (group) it is meant for.

A small supervisor (`Stack.watch`) restarts any process that should be running and is not,
as Kubernetes or systemd would: one killed by a scenario (expected) or one that exited on
its own (recorded, and reported by the scenario, since under `jingmin dev` such an exit
would stop the whole stack).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from eventkit import db, devstack, topics
from eventkit.service import ServiceSpec, load_services
from eventkit.settings import KernelSettings

ROOT = Path(__file__).resolve().parents[3]
# The metrics processors' faust app id (their default), i.e. their consumer group.
METRICS_GROUP = "jingmin-metrics"
# Fixed (32 bytes), so every process, and every restart of it, unwraps the same person keys.
MASTER_KEY = base64.b64encode(b"jingmin chaos suite: master key.").decode()
# Settings of the operator's environment that must not reach the private stack.
_SCRUBBED = (
    "DATABASE_URL",
    "DATABASE_SUFFIX",
    "KAFKA_BOOTSTRAP_SERVERS",
    "JINGMIN_HOME",
    "MASTER_KEY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)

Echo = Callable[[str], None]


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class Proc:
    """One supervised OS process (and its children: a metrics worker's processors)."""

    name: str
    service: str
    role: str  # api | relay | worker | extra
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    # Answers HTTP when the process is up: /healthz of an API, /metrics of a relay or worker.
    probe: str | None = None
    popen: subprocess.Popen[bytes] | None = None
    wanted: bool = False
    injected: bool = False
    starts: int = 0
    restart_at: float | None = None
    exits: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n--- chaos: start #{self.starts} at {time.strftime('%X')}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=ROOT,
            )
        self.wanted, self.injected, self.restart_at = True, False, None

    def signal(self, sig: int) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def kill9(self) -> None:
        """kill -9 of the process group; the supervisor brings it back."""
        self.injected = True
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(5)

    def stop(self, timeout: float = 15.0) -> str:
        """A clean stop (SIGTERM, SIGKILL after `timeout`); the supervisor leaves it down.
        Says how it went."""
        self.wanted = False
        if not self.running():
            return f"{self.name} was not running"
        assert self.popen is not None
        t0 = time.monotonic()
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(5)
            return f"{self.name} ignored SIGTERM for {timeout:.0f} s: SIGKILL"
        return f"{self.name} stopped in {time.monotonic() - t0:.1f} s"

    def tree(self) -> list[int]:
        if not self.running() or self.pid is None:
            return []
        return [self.pid, *descendants(self.pid)]

    def rss(self) -> int:
        return sum(rss_bytes(p) for p in self.tree())

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def usable_services(
    wanted: Sequence[str] | None = None,
) -> tuple[dict[str, ServiceSpec], dict[str, str]]:
    """Installed services whose code can run, and why each other one is left out.

    A service still being built may declare an entry point before its app module exists;
    the suite then says so instead of failing to start the whole platform.
    """
    specs = load_services()
    chosen: dict[str, ServiceSpec] = {}
    skipped: dict[str, str] = {}
    for name, spec in specs.items():
        if wanted is not None and name not in wanted:
            skipped[name] = "not selected (--services)"
            continue
        modules = [spec.app.partition(":")[0], *(w.partition(":")[0] for w in spec.workers)]
        missing = [m for m in modules if not _importable(m)]
        if missing:
            skipped[name] = f"not runnable yet: cannot import {', '.join(missing)}"
        else:
            chosen[name] = spec
    for name in wanted or ():
        if name not in specs:
            skipped[name] = "not installed"
    return chosen, skipped


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class Stack:
    """The private platform: start, inspect, break, repair, stop."""

    def __init__(
        self,
        services: Sequence[str] | None = None,
        *,
        echo: Echo = print,
        keep: bool = False,
        restart_delay: float = 1.0,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.specs, self.skipped = usable_services(services)
        self.echo = echo
        self.keep = keep
        self.restart_delay = restart_delay
        self.extra_env = dict(extra_env or {})
        self.home = Path(tempfile.mkdtemp(prefix="jingmin-chaos-"))
        self.logs = self.home / "logs"
        self.logs.mkdir()
        self.pgdata = self.home / "pg"
        self.pg_port = 0
        self.kafka_port = 0
        self.pg: devstack.Endpoint | None = None
        self.kafka: devstack.Endpoint | None = None
        self.kafka_generation = 0
        self.procs: dict[str, Proc] = {}
        self.ports: dict[str, int] = {}
        self.env: dict[str, str] = {}
        self._watcher: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------------------- addresses

    @property
    def pg_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def dsn(self, service: str) -> str:
        return db.database_dsn(self.pg_url, self.specs[service].database)

    def base_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[f'{service}-api']}"

    @property
    def settings(self) -> KernelSettings:
        """The kernel settings the stack's processes run with (for tokens and the store)."""
        return KernelSettings(
            jingmin_home=self.home / "home",
            database_url=self.pg_url,
            kafka_bootstrap_servers=self.bootstrap,
            master_key=MASTER_KEY,
        )

    def procs_of(self, role: str, service: str | None = None) -> list[Proc]:
        return [
            p
            for p in self.procs.values()
            if p.role == role and (service is None or p.service == service)
        ]

    # ------------------------------------------------------------------------- life cycle

    async def start(self) -> None:
        t0 = time.monotonic()
        self.pg_port = devstack.free_port()
        self.pg = await asyncio.to_thread(devstack.start_embedded, self.pgdata, self.pg_port)
        self.kafka_port = devstack.free_port()
        self.kafka = self._start_broker()
        for spec in self.specs.values():
            await devstack.prepare_service(spec, self.pg_url, self.bootstrap)
        self._build_processes()
        for proc in self.procs.values():
            proc.start()
        await self.wait_ready(self.procs.values(), within=120)
        self._watcher = asyncio.create_task(self.watch())
        self.echo(
            f"stack up in {time.monotonic() - t0:.1f} s: postgres {self.pg_url.split('@')[1]}, "
            f"tansu {self.bootstrap}, {len(self.procs)} processes "
            f"({', '.join(sorted(self.procs))}); logs in {self.logs}"
        )
        for name, why in self.skipped.items():
            self.echo(f"  service {name} left out: {why}")

    def _start_broker(self) -> devstack.Endpoint:
        self.kafka_generation += 1
        return devstack.start_tansu(
            self.kafka_port, log_path=self.logs / f"tansu-{self.kafka_generation}.log"
        )

    def _free_ports(self, names: Iterable[str]) -> None:
        taken = set(self.ports.values()) | {self.pg_port, self.kafka_port}
        for name in names:
            port = devstack.free_port()
            while port in taken:
                port = devstack.free_port()
            taken.add(port)
            self.ports[name] = port

    def _build_processes(self) -> None:
        names = list(self.specs)
        self._free_ports(
            [f"{n}-{role}" for n in names for role in ("api", "relay", "worker")]
            + ["metrics-processor"]
        )
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        env.update(
            DATABASE_URL=self.pg_url,
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
            JINGMIN_HOME=str(self.home / "home"),
            MASTER_KEY=MASTER_KEY,
            PYTHONUNBUFFERED="1",
        )
        for n in names:
            up = n.upper().replace("-", "_")
            env[f"{up}_PORT"] = str(self.ports[f"{n}-api"])
            env[f"{up}_RELAY_METRICS_PORT"] = str(self.ports[f"{n}-relay"])
            env[f"{up}_WORKER_METRICS_PORT"] = str(self.ports[f"{n}-worker"])
            # Services find each other by `<SERVICE>_<OTHER>_URL` (e.g. VISITS_INTAKE_URL).
            env[f"{up}_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{self.ports[f'{n}-api']}"
            for other in names:
                if other != n:
                    env[f"{up}_{other.upper()}_URL"] = (
                        f"http://127.0.0.1:{self.ports[f'{other}-api']}"
                    )
        # The metrics processors (children of the metrics worker) keep state and serve
        # /metrics; both go into the temporary directory and on a free port.
        env["METRICS_FAUST_DATADIR"] = str(self.home / "metrics-faust")
        env["METRICS_PROCESSOR_METRICS_PORT"] = str(self.ports["metrics-processor"])
        env.update(self.extra_env)
        self.env = env
        # dev_processes reads `<NAME>_PORT` from the environment for the API's --port.
        with mock.patch.dict(os.environ, {k: v for k, v in env.items() if k.endswith("_PORT")}):
            argvs = devstack.dev_processes(self.specs)
        for name, argv in argvs.items():
            service, _, role = name.rpartition("-")
            port = self.ports[name]
            probe = (
                f"http://127.0.0.1:{port}/healthz"
                if role == "api"
                else f"http://127.0.0.1:{port}/metrics"
            )
            self.procs[name] = Proc(
                name, service, role, argv, dict(env), self.logs / f"{name}.log", probe
            )

    def add_process(
        self, name: str, service: str, argv: list[str], env: Mapping[str, str], probe: str | None
    ) -> Proc:
        """An extra process under the same supervision (e.g. a second metrics processor)."""
        proc = Proc(
            name, service, "extra", argv, {**self.env, **env}, self.logs / f"{name}.log", probe
        )
        self.procs[name] = proc
        return proc

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for proc in self.procs.values():
            if proc.running():
                proc.signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
        await asyncio.gather(*(asyncio.to_thread(p.stop, 10.0) for p in self.procs.values()))
        if self.kafka is not None:
            if self.kafka.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.kafka.pid, signal.SIGCONT)
            self.kafka.stop()
        if self.pg is not None:
            await asyncio.to_thread(self.pg.stop)
        if self.keep:
            self.echo(f"kept {self.home}")
        else:
            shutil.rmtree(self.home, ignore_errors=True)

    # ------------------------------------------------------------------------- supervision

    async def watch(self) -> None:
        """Restart whatever should run and does not (after `restart_delay`)."""
        while True:
            now = time.monotonic()
            for proc in list(self.procs.values()):
                if not proc.wanted or proc.popen is None or proc.popen.poll() is None:
                    continue
                if proc.restart_at is None:
                    proc.restart_at = now + self.restart_delay
                    if not proc.injected:
                        why = f"{proc.name} exited on its own (code {proc.popen.returncode})"
                        proc.exits.append(why)
                        self.echo(f"  ! {why}; restarting it. Log tail:")
                        for line in proc.log_tail(6).splitlines():
                            self.echo(f"      {line[:200]}")
                elif now >= proc.restart_at:
                    proc.start()
            await asyncio.sleep(0.2)

    def take_exits(self) -> list[str]:
        """Processes that exited on their own since the last call."""
        out = [e for p in self.procs.values() for e in p.exits]
        for p in self.procs.values():
            p.exits.clear()
        return out

    async def wait_ready(self, procs: Iterable[Proc], within: float = 60.0) -> float:
        """Until every given process answers its probe; seconds waited."""
        t0 = time.monotonic()
        pending = [p for p in procs if p.probe]
        async with httpx.AsyncClient(timeout=2.0) as client:
            while pending:
                still = []
                for proc in pending:
                    ok = False
                    if proc.running():
                        with contextlib.suppress(httpx.HTTPError):
                            ok = (await client.get(proc.probe or "")).status_code == 200
                    if not ok:
                        still.append(proc)
                pending = still
                if not pending:
                    break
                if time.monotonic() - t0 > within:
                    detail = "; ".join(
                        f"{p.name} ({'running' if p.running() else 'not running'}): {p.log_tail(5)}"
                        for p in pending
                    )
                    raise RuntimeError(f"not ready after {within:.0f} s: {detail}")
                await asyncio.sleep(0.25)
        return time.monotonic() - t0

    # ---------------------------------------------------------------------------- faults

    def broker_signal(self, sig: int) -> None:
        assert self.kafka is not None and self.kafka.pid is not None
        os.kill(self.kafka.pid, sig)

    def broker_kill(self) -> None:
        """kill -9 of the broker: with memory storage every topic and offset is gone."""
        assert self.kafka is not None
        self.broker_signal(signal.SIGKILL)
        self.kafka.stop()  # reaps it

    async def broker_start_empty(self, within: float = 120.0) -> tuple[float, list[str]]:
        """A new, empty broker on the same port, with every declared topic; seconds waited
        for the port (a killed Tansu leaves it in TIME_WAIT for about a minute), and the
        topics that had to be recreated."""
        t0 = time.monotonic()
        while not devstack.port_is_free(self.kafka_port):
            if time.monotonic() - t0 > within:
                raise RuntimeError(f"port {self.kafka_port} still busy after {within:.0f} s")
            await asyncio.sleep(0.5)
        waited = time.monotonic() - t0
        self.kafka = await asyncio.to_thread(self._start_broker)
        return waited, await self._declared_topics()

    async def _declared_topics(self, attempts: int = 10) -> list[str]:
        """Create every declared topic, and recreate the ones created wrong.

        Tansu creates a topic on the first metadata request naming it, with 4 partitions;
        the running services ask for theirs as soon as the broker is back, before anyone
        can create them. It also takes records for a topic that does not exist (a producer
        with the old broker's metadata): they are counted but never fetched, and later
        writes to that partition fail. The compose and k8s brokers have auto-creation off
        and refuse such writes, so there a client waits for the operator instead. Here the
        operator recreates what came out wrong (nothing was written that counts: the relays
        are stopped until the replay, and the metrics processors republish).
        """
        wanted = [t for spec in self.specs.values() for t in devstack.service_topics(spec)]
        if "metrics" in self.specs:
            # The processors (default app id) recreate them too, but Tansu may be first.
            from jingmin_metrics.service import processor_topics

            wanted += processor_topics(METRICS_GROUP, 12)
        recreated: list[str] = []
        for _ in range(attempts):
            await topics.ensure_topics(self.bootstrap, wanted)
            have = await topics.list_topics(self.bootstrap)
            wrong = [t.name for t in wanted if have.get(t.name) != t.partitions]
            wrong += await self._orphaned([t.name for t in wanted if t.name not in wrong])
            if not wrong:
                return sorted(set(recreated))
            recreated += wrong
            await topics.recreate_topics(self.bootstrap, [t for t in wanted if t.name in wrong])
        raise RuntimeError(f"topics still with the wrong partition count: {wrong}")

    async def _orphaned(self, names: list[str]) -> list[str]:
        """Topics with a partition whose ListOffsets answer is past what fetches see."""
        tps = await partitions_of(self.bootstrap, names)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(tps)
            listed = await consumer.end_offsets(tps)
            readable = await topics.end_offsets(consumer, tps)
        finally:
            await consumer.stop()
        return sorted({tp.topic for tp in tps if listed[tp] > readable[tp]})

    async def postgres_restart(self, down: float) -> None:
        """`pg_ctl stop -m fast` (every session cut), `down` seconds, then start again."""
        assert self.pg is not None
        await asyncio.to_thread(self.pg.stop)
        await asyncio.sleep(down)
        self.pg = await asyncio.to_thread(devstack.start_embedded, self.pgdata, self.pg_port)

    async def cli(self, *args: str, within: float = 600.0) -> tuple[int, str]:
        """`jingmin <args>` against the private stack; (exit code, output)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "eventkit.cli",
            *args,
            env=self.env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), within)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return -1, f"jingmin {' '.join(args)}: no answer after {within:.0f} s"
        return proc.returncode or 0, out.decode(errors="replace")

    # ------------------------------------------------------------------------- inspection

    async def outbox_pending(self) -> dict[str, int]:
        """Unpublished outbox rows per service (-1 when the database does not answer)."""
        out: dict[str, int] = {}
        for name in self.specs:
            try:
                conn = await asyncpg.connect(self.dsn(name), timeout=5)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                out[name] = -1
                continue
            try:
                out[name] = int(
                    await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                )
            finally:
                await conn.close()
        return out

    async def consumer_lag(self) -> dict[str, int]:
        """Per consumer group: messages between its committed offsets and the partition ends.

        Only partitions the group has committed count. Committed offsets are read with a
        consumer of the group (OffsetFetch), which Tansu answers in a form aiokafka's admin
        client cannot decode; the consumer never joins the group, so it changes nothing.
        The metrics processors keep their positions in the metrics database, not in their
        group's commits (faust's commits only say what it handed over): their lag is read
        from there.
        """
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10000)
        await admin.start()
        try:
            groups = [g for g, *_ in await admin.list_consumer_groups()]
            names = [t for t in await admin.list_topics() if not t.startswith("__")]
        finally:
            await admin.close()
        tps = await partitions_of(self.bootstrap, names)
        ends = await end_offsets(self.bootstrap, tps)
        lag: dict[str, int] = {}
        for group in groups:
            member = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False
            )
            await member.start()
            try:
                committed = await asyncio.gather(*(member.committed(tp) for tp in tps))
            finally:
                await member.stop()
            lag[group] = sum(
                max(0, ends.get(tp, 0) - off)
                for tp, off in zip(tps, committed, strict=True)
                if off is not None and off >= 0
            )
        if METRICS_GROUP in lag and "metrics" in self.specs:
            stored = await self._metrics_positions()
            if stored is not None:
                lag[METRICS_GROUP] = sum(
                    max(0, ends.get(tp, 0) - off) for tp, off in stored.items() if tp in ends
                )
        return lag

    async def _metrics_positions(self) -> dict[TopicPartition, int] | None:
        """The next offset of each source partition, as the metrics database holds it."""
        try:
            conn = await asyncpg.connect(self.dsn("metrics"), timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return None
        try:
            rows = await conn.fetch("SELECT topic, partition, next_offset FROM metrics_positions")
        except asyncpg.PostgresError:
            return None
        finally:
            await conn.close()
        return {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def quiesce(
        self, within: float, *, stable: int = 3, groups: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Wait until every outbox is published and every consumer group (`groups` among
        them: after a broker restart a group must join again first) has caught up, the
        same for `stable` consecutive looks; what was seen last, and whether it settled."""
        expected = set(groups)
        t0 = time.monotonic()
        calm = 0
        last: dict[str, Any] = {}
        while True:
            try:
                pending = await self.outbox_pending()
                lag = await self.consumer_lag()
                error = None
            except Exception as exc:  # the broker may still be coming back
                pending, lag, error = {}, {}, f"{type(exc).__name__}: {exc}"
            last = {"outbox_pending": pending, "consumer_lag": lag, "error": error}
            quiet = (
                error is None
                and pending
                and all(v == 0 for v in pending.values())
                and all(v == 0 for v in lag.values())
                and expected <= set(lag)
            )
            calm = calm + 1 if quiet else 0
            if calm >= stable:
                last.update(settled=True, seconds=round(time.monotonic() - t0, 1))
                return last
            if time.monotonic() - t0 > within:
                last.update(settled=False, seconds=round(time.monotonic() - t0, 1))
                return last
            await asyncio.sleep(1.0)


async def end_offsets(
    bootstrap: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """True end offsets (`eventkit.topics.end_offsets`: Tansu's ListOffsets falls short)."""
    wanted = list(partitions)
    if not wanted:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(wanted)
        return await topics.end_offsets(consumer, wanted)
    finally:
        await consumer.stop()


async def partitions_of(bootstrap: str, names: Iterable[str]) -> list[TopicPartition]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        return [
            TopicPartition(t, p)
            for t in sorted(names)
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
    finally:
        await consumer.stop()
