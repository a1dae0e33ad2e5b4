"""Pytest plugin: real PostgreSQL and Kafka-protocol broker fixtures, and polling helpers."""

from __future__ import annotations

import asyncio
import inspect
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
import pytest_asyncio
from aiokafka import ConsumerRecord
from playwright.async_api import Browser, async_playwright

from eventkit import db, devstack
from eventkit.envelope import Envelope
from eventkit.settings import KernelSettings

__all__ = ["DatabaseFactory", "free_port", "serving", "wait_for"]

free_port = devstack.free_port

T = TypeVar("T")


# A deadline parameter (not asyncio.timeout) so a slow predicate call still finishes cleanly.
async def wait_for(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,  # noqa: ASYNC109
    interval: float = 0.05,
    message: str = "",
) -> T:
    """Poll `predicate` (sync or async) until it returns something truthy, and return it."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(message or f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def pytest_configure(config: pytest.Config) -> None:
    """Without KAFKA_BOOTSTRAP_SERVERS the session's broker is the dev broker (the
    `kafka_bootstrap` fixture, and tests that start their own Tansu): mark the environment
    for it (devstack.DEV_BROKER_ENV) before any test module builds a Kafka client's settings
    at import time, as jingmin_metrics.stream.app builds its faust app."""
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        os.environ.update(devstack.DEV_BROKER_ENV)


class DatabaseFactory(Protocol):
    async def __call__(self, migrations_dirs: Sequence[Path] = ()) -> str: ...


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """DATABASE_URL, else 127.0.0.1:5432, else an embedded server for the session."""
    endpoint = devstack.resolve_postgres(KernelSettings())
    try:
        yield endpoint.address
    finally:
        endpoint.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS, else a Tansu on a free port for the session."""
    explicit = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if explicit:
        yield explicit
        return
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    endpoint = devstack.start_tansu(devstack.free_port(), log_path=log)
    try:
        yield endpoint.address
    finally:
        endpoint.stop()


@pytest_asyncio.fixture
async def fresh_database(pg_server_url: str) -> AsyncIterator[DatabaseFactory]:
    """Make databases with the kernel (and given) migrations; each is dropped afterwards."""
    made: list[str] = []

    async def make(migrations_dirs: Sequence[Path] = ()) -> str:
        name = f"test_{uuid.uuid4().hex[:12]}"
        await db.ensure_database(pg_server_url, name)
        made.append(name)
        dsn = db.database_dsn(pg_server_url, name)
        await asyncio.to_thread(db.migrate, dsn, *migrations_dirs)
        return dsn

    yield make
    for name in made:
        await db.drop_database(pg_server_url, name)


# The flags that keep Chromium from phoning home: on a closed network its background
# connections are refused many at a time and slow every start.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's headless Chromium driven by Playwright (CHROMIUM_PATH to use another build).

    Missing Chromium is an error, not a skip: a page test that silently stops running
    would hide a broken page. `.ci/run` installs the Debian package.
    """
    path = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(path).exists():
        pytest.fail(
            f"Chromium not found at {path}: apt-get install chromium (or set CHROMIUM_PATH)"
        )
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=path, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield chromium
        finally:
            await chromium.close()


def unit_event(
    kind: str, code: str, version: int, name: str = "", at: datetime | None = None
) -> Envelope:
    """A unit register event (`Registered`, `Renamed`, `Retired`) as intake publishes it."""
    at = at or datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    data: dict[str, Any] = {
        "code": code,
        "bureau": code[:6],
        "station": code[:9],
        "occurred_at": at.isoformat(),
    }
    if kind == "Registered":
        station = len(code) == 9
        data |= {"kind": "station" if station else "beat", "name": name}
        data["parent"] = code[:6] if station else code[:9]
    elif kind == "Renamed":
        data |= {"old_name": "旧名", "new_name": name}
    ce = f"jingmin.intake.Unit{kind}.v1"
    return Envelope(
        id=f"{code}-{version}-{kind}",
        source="/jingmin/intake",
        type=ce,
        subject=code,
        time=at,
        data=data,
        dataschema=f"urn:jingmin:schema:{ce}",
        bureau=code[:6],
        streamid=code,
        streamversion=version,
    )


def consumer_record(env: Envelope, topic: str, offset: int = 0) -> ConsumerRecord[bytes, bytes]:
    """`env` as a consumer receives it from partition 0 of `topic`."""
    value, key = env.kafka_value(), env.key.encode()
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(value),
        headers=env.kafka_headers(),
    )


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """`app` under uvicorn on a free local port, as a browser reaches it; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="none"
        )
    )
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started, timeout=20)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
