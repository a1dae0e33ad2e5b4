"""`jingmin dev` end to end: HTTP in, CloudEvent out on the topic, replay after a broker loss."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cloudevents.v1.kafka import KafkaMessage, from_binary
from eventkit.auth import issue_token
from eventkit.devstack import free_port
from eventkit.service import load_services
from eventkit.settings import KernelSettings
from kafka import KafkaConsumer, TopicPartition

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TOPIC = "intake.case.events.v1"
ROOT = Path(__file__).resolve().parents[2]


class DevStack:
    def __init__(self, home: Path, server_url: str, suffix: str) -> None:
        self.home = home
        self.server_url = server_url
        self.suffix = suffix
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.reader: threading.Thread | None = None
        self.bootstrap = ""

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
        env.update(
            JINGMIN_HOME=str(self.home),
            DATABASE_URL=self.server_url,
            DATABASE_SUFFIX=self.suffix,
            PYTHONUNBUFFERED="1",
        )
        # Every process on a free port: a developer's own `make dev` may hold the defaults.
        for name in load_services():
            prefix = name.upper().replace("-", "_")
            for port in ("PORT", "RELAY_METRICS_PORT", "WORKER_METRICS_PORT"):
                env[f"{prefix}_{port}"] = str(free_port())
        env["INTAKE_PORT"] = str(self.port)
        self.lines = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eventkit.cli", "dev"],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # Read the output all the time: an undrained pipe fills up and blocks `jingmin dev`
        # and, behind it, every service writing a log line.
        self.reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            match = next(
                (
                    re.search(r"kafka:\s*(\S+)", ln)
                    for ln in list(self.lines)
                    if re.search(r"kafka:\s*\S+", ln)
                ),
                None,
            )
            if match and self._ready():
                self.bootstrap = match.group(1)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        self.reader.join(timeout=5)
        raise AssertionError("jingmin dev did not come up:\n" + "".join(self.lines[-60:]))

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.reader is not None:
                self.reader.join(timeout=5)

    def kill(self) -> None:
        """Stop whatever is left. honcho runs each process in a group of its own, so killing
        `jingmin dev`'s group would leave the services running: ask it to stop them first."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def stack(tmp_path: Path, pg_server_url: str) -> Iterator[DevStack]:
    suffix = "_e2e" + uuid.uuid4().hex[:8]
    dev = DevStack(tmp_path / "home", pg_server_url, suffix)
    yield dev
    dev.kill()
    import asyncio

    from eventkit.db import drop_database

    for spec in load_services().values():  # jingmin dev makes every service's database
        asyncio.run(drop_database(pg_server_url, spec.database + suffix))


def _read_topic(bootstrap: str, want: int, timeout: float = 30) -> list[object]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
    )
    parts = [TopicPartition(TOPIC, p) for p in consumer.partitions_for_topic(TOPIC) or ()]
    consumer.assign(parts)
    consumer.seek_to_beginning()
    records: list[object] = []
    deadline = time.monotonic() + timeout
    while len(records) < want and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    consumer.close()
    return records


def _quick_start_block() -> str:
    """The README's shell block that talks to the running platform (the one with curl)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.S)
    (block,) = [b for b in blocks if "curl" in b and "jingmin token" in b]
    return block


def _run_quick_start(stack: DevStack) -> str:
    script = _quick_start_block().replace("localhost:8101", f"localhost:{stack.port}")
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "JINGMIN_HOME": str(stack.home),
        "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
    }
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_case_goes_from_http_to_the_topic_and_survives_a_broker_loss(stack: DevStack) -> None:
    stack.start()
    settings = KernelSettings(jingmin_home=stack.home)
    token = issue_token(settings, subject="op-1", roles=["intake_operator"], scopes=["330602"])
    base = f"http://127.0.0.1:{stack.port}"
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "bureau": "330602",
        "station": "330602001",
        "channel": "call_110",
        "kind": "alarm",
        "area_type": "urban",
        "demand": "有人打架，请快来",
        "person": {"name": "张三", "phone": "13800000000"},
    }
    created = httpx.post(f"{base}/v1/cases", json=body, headers=headers, timeout=10)
    assert created.status_code == 201, created.text
    case_id = created.json()["case_id"]
    dispatched = httpx.post(
        f"{base}/v1/cases/{case_id}/dispatch",
        headers=headers,
        timeout=10,
        json={"unit": "330602001", "officer_ids": ["A1"], "reason": "斗殴", "purpose": "制止"},
    )
    assert dispatched.status_code == 200, dispatched.text

    records = _read_topic(stack.bootstrap, 2)
    ours = [r for r in records if r.key == case_id.encode()]  # type: ignore[attr-defined]
    assert len(ours) >= 2
    events = [
        from_binary(KafkaMessage(headers=dict(r.headers), key=r.key, value=r.value)) for r in ours
    ]  # type: ignore[attr-defined]
    assert [e["type"] for e in events[:2]] == [
        "jingmin.intake.CaseReceived.v1",
        "jingmin.intake.CaseDispatched.v1",
    ]
    first = events[0]
    assert first["source"] == "/jingmin/intake" and first["subject"] == case_id
    assert first["bureau"] == "330602" and first["streamversion"] == "1"
    raw = b"".join(r.value for r in ours)  # type: ignore[attr-defined]
    for secret in ("张三", "13800000000", "有人打架", "斗殴"):
        assert secret.encode() not in raw, f"{secret} leaked onto the topic"

    # What an operator types to look at the topic (kcat-style output).
    shown = subprocess.run(
        [sys.executable, "-m", "eventkit.cli", "tail", TOPIC, "--bootstrap", stack.bootstrap],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert f"{case_id} " in shown and "ce_type=jingmin.intake.CaseReceived.v1" in shown

    # The README's quick start, as typed, in a fresh shell with neither uv nor the venv
    # on PATH (only the stack's port and broker differ from `make dev`'s defaults).
    said = _run_quick_start(stack)
    answer, _end = json.JSONDecoder().raw_decode(said)  # curl's body, then tail's lines
    made = answer["case_id"]
    assert f"{made} " in said and "ce_type=jingmin.intake.CaseReceived.v1" in said

    assert stack.stop() in (0, 130, -2)
    assert "stopping tansu" in "".join(stack.lines)

    # The dev broker forgets everything; a restart replays the store into the new one.
    stack.start()
    replayed = _read_topic(stack.bootstrap, 2)
    ids = {json.loads(r.value)["case_id"] for r in replayed}  # type: ignore[attr-defined]
    assert case_id in ids
    assert stack.stop() in (0, 130, -2)
