"""The dev stack: Tansu, databases, migrations, embedded Postgres, supervision and the CLI."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from eventkit import cli, db, devstack, topics
from eventkit.service import ServiceSpec, TopicSpec
from eventkit.testing import DatabaseFactory, free_port, wait_for
from typer.testing import CliRunner

pytestmark = pytest.mark.integration


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _fake_spec(name: str, migrations: Path, topic: str) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        default_port=free_port(),
        database=name,
        app="nowhere:create_app",
        migrations=migrations,
        topics=[TopicSpec(topic, partitions=2)],
        to_messages=lambda event: [],
        dead_letter_topic=f"{topic}.dlq",
    )


SERVICE_MIGRATION = """\
-- A service table beside the kernel's; the function body holds a literal percent sign.
-- depends: 0001_kernel
CREATE TABLE IF NOT EXISTS widgets (id text PRIMARY KEY, label text NOT NULL);
CREATE OR REPLACE FUNCTION widget_notice() RETURNS trigger AS $$
BEGIN
    RAISE NOTICE 'widget % (100%% sure)', NEW.id;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
"""


@pytest.fixture
def service_migrations(tmp_path: Path) -> Path:
    path = tmp_path / "migrations"
    path.mkdir()
    (path / "1001_devstack_widgets.sql").write_text(SERVICE_MIGRATION)
    return path


async def test_topics_are_created_listed_and_carry_messages(kafka_bootstrap: str) -> None:
    name = _unique("devstack.test.events.v1")
    specs = [TopicSpec(name, partitions=3, compacted=True), TopicSpec(f"{name}.dlq", 1)]

    assert sorted(await topics.ensure_topics(kafka_bootstrap, specs)) == sorted(
        [name, f"{name}.dlq"]
    )
    assert await topics.ensure_topics(kafka_bootstrap, specs) == []
    listed = await topics.list_topics(kafka_bootstrap)
    assert listed[name] == 3
    assert listed[f"{name}.dlq"] == 1

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(name, b"hello", key=b"case-1", partition=1)
    finally:
        await producer.stop()
    # Explicit assignment: a consumer-group join takes 20-30 s on Tansu.
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(name, 1)])
        record = await asyncio.wait_for(consumer.getone(), timeout=15)
    finally:
        await consumer.stop()
    assert (record.key, record.value, record.partition) == (b"case-1", b"hello", 1)


async def test_concurrent_topic_creation_is_tolerated(kafka_bootstrap: str) -> None:
    spec = TopicSpec(_unique("devstack.race.events.v1"), partitions=2)
    results = await asyncio.gather(
        *(topics.ensure_topics(kafka_bootstrap, [spec]) for _ in range(3))
    )
    assert sum(len(r) for r in results) <= 1
    assert (await topics.list_topics(kafka_bootstrap))[spec.name] == 2


_made: list[str] = []


async def test_fresh_database_has_the_kernel_tables(fresh_database: DatabaseFactory) -> None:
    dsn = await fresh_database()
    conn = await asyncpg.connect(dsn)
    try:
        for table in ("events", "outbox", "processed_messages", "subject_keys"):
            assert await conn.fetchval("SELECT to_regclass($1)", table) is not None
    finally:
        await conn.close()
    _made.append(dsn.rsplit("/", 1)[1])


async def test_fresh_database_is_dropped_afterwards(pg_server_url: str) -> None:
    if not _made:
        pytest.skip("runs after test_fresh_database_has_the_kernel_tables")
    conn = await asyncpg.connect(db.database_dsn(pg_server_url, "postgres"))
    try:
        assert await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", _made[0]) is None
    finally:
        await conn.close()


async def test_service_migrations_apply_after_the_kernel(
    fresh_database: DatabaseFactory, service_migrations: Path
) -> None:
    dsn = await fresh_database([service_migrations])
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO widgets VALUES ('w1', 'first')")
        assert await conn.fetchval("SELECT count(*) FROM events") == 0
    finally:
        await conn.close()


async def test_migrate_is_idempotent_and_safe_to_race(
    pg_server_url: str, service_migrations: Path
) -> None:
    name = _unique("devstack_migrate")
    created = await asyncio.gather(*(db.ensure_database(pg_server_url, name) for _ in range(4)))
    assert created.count(True) == 1
    dsn = db.database_dsn(pg_server_url, name)
    try:
        first, second = await asyncio.gather(
            asyncio.to_thread(db.migrate, dsn, service_migrations),
            asyncio.to_thread(db.migrate, dsn, service_migrations),
        )
        # Every kernel migration (the list grows), then the service's, each applied once.
        kernel = sorted(p.stem for p in db.KERNEL_MIGRATIONS.glob("*.sql"))
        assert kernel[:3] == [
            "0001_kernel",
            "0002_subject_key_for_write",
            "0003_outbox_notify_only_with_rows",
        ]
        assert sorted(first + second) == [*kernel, "1001_devstack_widgets"]
        assert await asyncio.to_thread(db.migrate, dsn, service_migrations) == []
    finally:
        await db.drop_database(pg_server_url, name)


def test_database_dsn_replaces_only_the_database() -> None:
    assert (
        db.database_dsn("postgresql://u:p@h:5433/postgres?sslmode=disable", "intake")
        == "postgresql://u:p@h:5433/intake?sslmode=disable"
    )
    assert db.database_dsn("postgresql://postgres@127.0.0.1:5432", "x").endswith("5432/x")


async def test_embedded_postgres_starts_and_stops(tmp_path: Path) -> None:
    started = time.monotonic()
    port = free_port()
    endpoint = await asyncio.to_thread(devstack.start_embedded, tmp_path / "pg", port)
    try:
        assert endpoint.started
        conn = await asyncpg.connect(endpoint.address)
        try:
            assert await conn.fetchval("SHOW server_version_num") >= "180000"
        finally:
            await conn.close()
        # A second start on the same data finds the running server and leaves it alone.
        again = await asyncio.to_thread(devstack.start_embedded, tmp_path / "pg")
        assert (again.address, again.started) == (endpoint.address, False)
    finally:
        await asyncio.to_thread(endpoint.stop)
    assert not await asyncio.to_thread(devstack.postgres_answers, endpoint.address, 1.0)
    assert time.monotonic() - started < 20


def test_tansu_stop_frees_the_broker() -> None:
    endpoint = devstack.start_tansu()
    assert devstack.kafka_answers(endpoint.address)
    endpoint.stop()
    assert not devstack.kafka_answers(endpoint.address)


def test_cli_topics_lists_the_broker(kafka_bootstrap: str) -> None:
    name = _unique("devstack.cli.events.v1")
    asyncio.run(topics.ensure_topics(kafka_bootstrap, [TopicSpec(name, partitions=4)]))
    result = CliRunner().invoke(cli.app, ["topics", "--bootstrap", kafka_bootstrap])
    assert result.exit_code == 0, result.output
    assert f"{name}\t4" in result.output.splitlines()


def test_cli_migrate_and_topics_create_use_every_service(
    monkeypatch: pytest.MonkeyPatch,
    pg_server_url: str,
    kafka_bootstrap: str,
    service_migrations: Path,
) -> None:
    spec = _fake_spec(_unique("devstack_svc"), service_migrations, _unique("devstack.svc.v1"))
    monkeypatch.setattr(cli, "load_services", lambda: {spec.name: spec})
    runner = CliRunner()
    try:
        result = runner.invoke(
            cli.app, ["migrate", "--service", spec.name], env={"DATABASE_URL": pg_server_url}
        )
        assert result.exit_code == 0, result.output
        assert "0001_kernel" in result.output and "1001_devstack_widgets" in result.output
        again = runner.invoke(cli.app, ["migrate"], env={"DATABASE_URL": pg_server_url})
        assert f"{spec.name}: up to date" in again.output

        created = runner.invoke(cli.app, ["topics", "--create", "--bootstrap", kafka_bootstrap])
        assert created.exit_code == 0, created.output
        lines = created.output.splitlines()
        assert f"{spec.topics[0].name}\t2" in lines
        assert f"{spec.dead_letter_topic}\t1" in lines

        unknown = runner.invoke(cli.app, ["migrate", "--service", "nope"])
        assert unknown.exit_code != 0
    finally:
        asyncio.run(db.drop_database(pg_server_url, spec.database))


SUPERVISOR = textwrap.dedent("""\
    import sys
    from eventkit.devstack import supervise
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    sys.exit(supervise({"one": sleeper, "two": sleeper}, {"PATH": "/usr/bin:/bin"}))
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_supervisor_stops_every_child_on_a_signal(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    pids: list[int] = []
    deadline = time.monotonic() + 20
    while len(pids) < 2 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        pids += [int(p) for p in re.findall(r"started \(pid=(\d+)\)", line)]
    assert len(pids) == 2
    proc.send_signal(sig)
    assert proc.wait(timeout=15) != 0
    for pid in pids:
        assert not _alive(pid), f"child {pid} survived"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie awaiting its reaper is gone for our purposes.
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return status != "Z"


async def test_wait_for_polls_sync_and_async_predicates() -> None:
    ticks: list[int] = []

    def sync_pred() -> int:
        ticks.append(1)
        return len(ticks) if len(ticks) >= 3 else 0

    assert await wait_for(sync_pred, timeout=2, interval=0.01) == 3

    async def never() -> bool:
        return False

    with pytest.raises(TimeoutError):
        await wait_for(never, timeout=0.1, interval=0.01)


def test_cli_token_prints_a_jwt_and_rejects_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"JINGMIN_HOME": str(tmp_path)}
    args = ["token", "--role", "officer", "--scope", "330100", "--ttl", "1h"]
    result = runner.invoke(cli.app, args, env=env)
    assert result.exit_code == 0, result.output
    assert result.output.strip().count(".") == 2
    bad = runner.invoke(cli.app, [*args[:-1], "soon"], env=env)
    assert bad.exit_code != 0


async def test_repair_partitions_remakes_only_a_topic_of_another_count(
    kafka_bootstrap: str,
) -> None:
    right = TopicSpec(_unique("devstack.right.events.v1"), partitions=2)
    wrong = TopicSpec(_unique("devstack.wrong.events.v1"), partitions=3)
    absent = TopicSpec(_unique("devstack.absent.events.v1"), partitions=2)
    await topics.ensure_topics(kafka_bootstrap, [right])
    await topics.ensure_topics(kafka_bootstrap, [TopicSpec(wrong.name, partitions=1)])
    repaired = await topics.repair_partitions(kafka_bootstrap, [right, wrong, absent])
    assert repaired == [wrong.name]
    have = await topics.list_topics(kafka_bootstrap)
    assert (have[right.name], have[wrong.name], absent.name in have) == (2, 3, False)
