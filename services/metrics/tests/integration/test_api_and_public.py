"""The exporter and drill-down API, and the public daily topic, over a snapshot on a real
broker (records as processors publish them)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from eventkit import devstack, topics
from eventkit.auth import issue_token
from eventkit.contracts import SchemaRegistry
from eventkit.settings import KernelSettings
from eventkit.testing import DatabaseFactory, wait_for
from eventkit.topics import ensure_topics
from jingmin_metrics.adapters.daily_publisher import DailyPublisher
from jingmin_metrics.domain.clock import OFFSET
from jingmin_metrics.service import DAILY_TOPIC, SERVICE
from jingmin_metrics.settings import MetricsSettings
from prometheus_client.parser import text_string_to_metric_families
from support import snapshot_records, store_figures, synthetic_observations

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
BUREAU, OTHER = "330602", "330603"
# The Beijing day of the newest synthetic observations, 5 minutes before NOW
# (support.synthetic_observations): not NOW's own day in the first minutes after midnight.
TODAY = (NOW - timedelta(minutes=5) + OFFSET).date()


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, metrics_broker: str) -> KernelSettings:
    return KernelSettings(
        jingmin_home=tmp_path_factory.mktemp("home"),
        master_key=base64.b64encode(os.urandom(32)).decode(),
        kafka_bootstrap_servers=metrics_broker,
    )


@pytest.fixture
async def snapshot(metrics_broker: str, fresh_database: DatabaseFactory) -> str:
    """A metrics database holding two bureaus' synthetic cells, as if one processor owning
    partition 0 had committed them."""
    await ensure_topics(metrics_broker, devstack.service_topics(SERVICE))
    dsn = await fresh_database([SERVICE.migrations])
    await store_figures(dsn, snapshot_records(synthetic_observations([BUREAU, OTHER], 3, NOW, 2)))
    return dsn


@pytest.fixture
async def client(settings: KernelSettings, snapshot: str) -> AsyncIterator[httpx.AsyncClient]:
    from jingmin_metrics.entrypoints.app import create_app

    app = create_app(settings, dsn=snapshot)
    async with app.router.lifespan_context(app):
        await wait_for(lambda: app.state.reader.caught_up.is_set(), timeout=30)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://metrics.test") as c:
            yield c


def token(settings: KernelSettings, role: str, scope: str = BUREAU) -> dict[str, str]:
    value = issue_token(settings, subject=f"u-{role}", roles=[role], scopes=[scope])
    return {"Authorization": f"Bearer {value}"}


async def test_metrics_endpoint_serves_the_figures_and_only_allowed_labels(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    received = families["jingmin_intake_cases_received"]
    assert {s.labels["bureau"] for s in received.samples} == {BUREAU, OTHER}
    ratio = families["jingmin_satisfaction_ratio"]
    assert {s.labels["window"] for s in ratio.samples} == {"24h", "7d", "30d"}
    assert all(0 <= s.value <= 1 for s in ratio.samples)
    hist = families["jingmin_intake_dispatch_latency_seconds"]
    assert any(s.name.endswith("_bucket") and s.labels["le"] == "60.0" for s in hist.samples)
    for fam in families.values():
        for s in fam.samples:
            assert "officer" not in s.labels and "case_id" not in s.labels
    process = await client.get("/metrics/process")
    assert "jingmin_http_request_duration_seconds" in process.text


async def test_figures_are_scoped_by_the_token(
    client: httpx.AsyncClient, settings: KernelSettings
) -> None:
    commander = token(settings, "commander")
    r = await client.get("/v1/figures", headers=commander)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scope"] == BUREAU
    assert body["figures"]["intake"]["received"] > 0
    # Every rate travels with its volume.
    sat = body["figures"]["callbacks"]["satisfaction"]
    assert set(sat) == {"numerator", "denominator", "rate"} and sat["denominator"] > 0
    station = await client.get("/v1/figures", params={"scope": BUREAU + "001"}, headers=commander)
    assert station.json()["figures"]["intake"]["received"] < body["figures"]["intake"]["received"]
    other = await client.get("/v1/figures", params={"scope": OTHER}, headers=commander)
    assert other.status_code == 403
    wider = await client.get("/v1/figures", params={"scope": "33"}, headers=commander)
    assert wider.status_code == 403
    city = token(settings, "commander", scope="3306")
    both = await client.get("/v1/figures", params={"scope": "3306"}, headers=city)
    assert both.json()["figures"]["intake"]["received"] > body["figures"]["intake"]["received"]
    assert (await client.get("/v1/figures")).status_code == 401
    bad = await client.get(
        "/v1/figures", params={"from": "2026-03-05", "to": "2026-03-01"}, headers=commander
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")


async def test_officer_level_figures_only_for_commanders_and_supervisors(
    client: httpx.AsyncClient, settings: KernelSettings
) -> None:
    path = f"/v1/stations/{BUREAU}001/officers"
    for role in ("commander", "supervisor"):
        r = await client.get(path, headers=token(settings, role))
        assert r.status_code == 200, r.text
        assert r.json()["figures"], "no officers in the station"
    for role in ("officer", "admin", "intake_operator", "partner"):
        assert (await client.get(path, headers=token(settings, role))).status_code == 403
    assert (await client.get(f"/v1/stations/{OTHER}001/officers",
                             headers=token(settings, "commander"))).status_code == 403  # fmt: skip


async def test_breakdown_top_issues_and_equity(
    client: httpx.AsyncClient, settings: KernelSettings
) -> None:
    h = token(settings, "supervisor")
    by_station = (await client.get("/v1/figures/breakdown", params={"dimension": "station"},
                                   headers=h)).json()["figures"]  # fmt: skip
    assert set(by_station) == {f"{BUREAU}00{i}" for i in (1, 2, 3)}
    assert all("satisfaction" in v and "received" in v for v in by_station.values())
    bad = await client.get("/v1/figures/breakdown", params={"dimension": "officer"}, headers=h)
    assert bad.status_code == 422
    issues = (await client.get("/v1/top-issues", headers=h)).json()["figures"]
    assert "by_volume" in issues and "by_dissatisfaction" in issues
    eq = (await client.get("/v1/equity", headers=h)).json()["figures"]
    assert set(eq["groups"]) == {"local", "non_local", "vulnerable"}


async def test_daily_public_figures_are_schema_valid_and_suppress_small_cells(
    settings: KernelSettings, snapshot: str, metrics_broker: str
) -> None:
    publisher = DailyPublisher(
        MetricsSettings(kafka_bootstrap_servers=metrics_broker, metrics_database_dsn=snapshot)
    )
    stop = asyncio.Event()
    follow = asyncio.create_task(publisher.reader.run(stop))
    try:
        await wait_for(publisher.reader.caught_up.is_set, timeout=30)
        sent = await publisher.publish_changes()
        assert sent == 4  # two bureaus, two days
        assert await publisher.publish_changes() == 0  # nothing changed: nothing sent again
    finally:
        stop.set()
        await follow
    registry = SchemaRegistry.load()
    records = await _read(metrics_broker, DAILY_TOPIC)
    assert len(records) == 4
    for key, headers, body in records:
        assert headers["ce_type"] == "jingmin.metrics.DailyFigures.v1"
        registry.validate(headers["ce_type"], body)
        assert key == f"{body['bureau']}/{body['day']}"
        text = json.dumps(body)
        assert "officer" not in text and "station" not in text and "sub_" not in text
        for value in _counts(body):
            assert value is None or value == 0 or value >= 5
    today = [b for _k, _h, b in records if b["bureau"] == BUREAU and b["day"] == TODAY.isoformat()]
    assert today and today[0]["cases_received"] is not None


def _counts(body: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for k, v in body.items():
        if isinstance(v, dict):
            out += [x for name, x in v.items() if name != "rate"]
        elif isinstance(v, int) and k not in ("bureau", "day"):
            out.append(v)
    return out


async def _read(bootstrap: str, topic: str) -> list[tuple[str, dict[str, str], Any]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await topics.rewind(consumer, tps)
        out = []
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            assert datetime.now(UTC) < deadline
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    headers = {k: (v or b"").decode() for k, v in r.headers}
                    out.append((r.key.decode(), headers, json.loads(r.value)))
        return out
    finally:
        await consumer.stop()
