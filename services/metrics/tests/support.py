"""Builders shared by the metrics tests: envelopes as the services publish them, and a
synthetic snapshot as processors would publish it."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from eventkit import devstack
from eventkit.envelope import Envelope
from eventkit.settings import KernelSettings
from eventkit.testing import wait_for
from eventkit.topics import ensure_topics
from jingmin_metrics.domain.cells import Cells
from jingmin_metrics.domain.clock import local_day, local_hour, parse_us
from jingmin_metrics.domain.item import Observation
from jingmin_metrics.domain.measures import MEASURES, Kind
from jingmin_metrics.figures import snapshot
from jingmin_metrics.figures.families import KINDS, PROGRAMMES, SEVERITIES

BUREAU, STATION = "330602", "330602001"


def envelope(
    context: str,
    type_: str,
    stream: str,
    version: int,
    at: datetime,
    data: dict[str, Any],
    *,
    bureau: str = BUREAU,
    station: str = STATION,
) -> Envelope:
    ce = f"jingmin.{context}.{type_}.v1"
    body = {"bureau": bureau, "station": station, "occurred_at": at.astimezone(UTC).isoformat()}
    return Envelope(
        id=str(uuid.uuid4()),
        source=f"/jingmin/{context}",
        type=ce,
        subject=stream,
        time=at,
        data={**body, **data},
        dataschema=f"urn:jingmin:schema:{ce}",
        bureau=bureau,
        streamid=stream,
        streamversion=version,
    )


def case_events(
    t0: datetime, *, kind: str = "alarm", party: str = "local", cid: str | None = None
) -> list[Envelope]:
    """A case received, dispatched late (a breach), arrived, resolved, closed; a callback.

    Pass `cid` when the test means a partition: the key decides where the records land."""
    cid = cid or uuid.uuid4().hex
    iso = lambda t: t.astimezone(UTC).isoformat()  # noqa: E731
    cb = f"cb-{cid}-case_resolved"
    return [
        envelope("intake", "CaseReceived", cid, 1, t0, {
            "case_id": cid, "channel": "call_110", "kind": kind, "priority": "urgent",
            "area_type": "urban", "branch": "public_order", "party_category": party,
            "category": "dispute", "subject_id": "sub_abcdefgh12",
            "deadlines": {"dispatch": iso(t0 + timedelta(seconds=60))},
        }),
        envelope("intake", "FirstContactAssigned", cid, 2, t0 + timedelta(seconds=20), {
            "case_id": cid, "officer_id": "p0007", "unit": STATION, "in_remit": True,
            "deadlines": {},
        }),
        envelope("intake", "DeadlineBreached", cid, 3, t0 + timedelta(seconds=60), {
            "case_id": cid, "deadline": "dispatch", "due_at": iso(t0 + timedelta(seconds=60)),
        }),
        envelope("intake", "CaseDispatched", cid, 4, t0 + timedelta(seconds=90), {
            "case_id": cid, "unit": STATION, "officer_ids": ["p0007"],
            "deadlines": {"arrival": iso(t0 + timedelta(seconds=390))},
        }),
        envelope("intake", "ArrivedOnScene", cid, 5, t0 + timedelta(seconds=400), {"case_id": cid}),
        envelope("intake", "CaseResolved", cid, 6, t0 + timedelta(hours=1), {"case_id": cid}),
        envelope("visits", "CallbackScheduled", cb, 1, t0 + timedelta(hours=1), {
            "callback_id": cb, "case_id": cid, "trigger": "case_resolved", "mode": "sms",
            "due_at": iso(t0 + timedelta(hours=3)), "expires_at": iso(t0 + timedelta(days=7)),
        }),
        envelope("visits", "CallbackAnswered", cb, 2, t0 + timedelta(hours=2), {
            "callback_id": cb, "satisfaction": "dissatisfied", "security": "safe",
            "has_comment": False,
        }),
    ]  # fmt: skip


# A survey wave's dimensions that must read as what they are (a confidence is a number).
SURVEY_VALUES = {
    "wave": "f" * 32, "period_end": "2026-12-31", "confidence": "0.95",
    "dimension": "residence", "category": "local", "disposition": "completed",
    "age_band": "30-44", "sex": "female", "residence": "local", "mode": "phone",
}  # fmt: skip


def _dims(measure: str, station: str, at_us: int, **values: str) -> tuple[str, ...]:
    defaults = {"station": station, "hour": str(local_hour(at_us)), **SURVEY_VALUES}
    defaults.update({d: vs[0] for d, vs in VARYING.items()})
    return tuple(values.get(d, defaults.get(d, "x")) for d in MEASURES[measure].dims)


# For each family label, every value it can take (the worst case of the budget test).
VARYING: dict[str, tuple[str, ...]] = {
    "kind": KINDS,
    "satisfaction": ("satisfied", "basically_satisfied", "dissatisfied"),
    "security": ("safe", "basically_safe", "unsafe"),
    "trigger": ("case_resolved", "service_recovery"),
    "on_time": ("true", "false"),
    "on_target": ("true", "false"),
    "one_visit": ("true", "false", "unrecorded"),
    "outcome": ("reached", "completed", "refused", "nobody_home", "substantiated"),
    "party_category": ("local", "non_local", "vulnerable", ""),
    "programme": PROGRAMMES[:-1],
    "severity": SEVERITIES,
}


def synthetic_observations(
    bureaus: Iterable[str], stations: int, now: datetime, days: int = 3
) -> list[Observation]:
    """Every measure at every station, each label value present, over the last days."""
    out: list[Observation] = []
    for bureau in bureaus:
        for n in range(1, stations + 1):
            station = f"{bureau}{n:03d}"
            for back in range(days):
                at = parse_us((now - timedelta(days=back, minutes=5)).isoformat())
                day = local_day(at)
                for name, measure in MEASURES.items():
                    value = 90_000 if measure.kind is Kind.HISTOGRAM else 1
                    varying = [d for d in measure.dims if d in VARYING] or [""]
                    for dim in varying:
                        for v in VARYING.get(dim, ("",)):
                            extra = {dim: v} if dim else {}
                            dims = _dims(name, station, at, **extra)
                            if measure.kind is Kind.GAUGE:
                                dims = dims[: len(measure.dims)]
                                out.append(Observation(name, bureau, None, dims, 1))
                            else:
                                out.append(Observation(name, bureau, day, dims, value))
    return out


def snapshot_records(
    observations: list[Observation], partition: int = 0
) -> list[tuple[str, bytes]]:
    """Chunk records and a status record, as one processor owning one partition sends them."""
    cells = Cells()
    cells.apply(observations, +1)
    records = [
        (
            snapshot.chunk_key(partition, bureau, day),
            snapshot.encode_chunk(partition, 1, bureau, day, cells.chunk((bureau, day))),
        )
        for bureau, day in sorted(cells)
    ]
    records.append(
        (snapshot.status_key(partition), snapshot.encode_status(partition, 1, 0, 0, 0.0))
    )
    return records


def synthetic_view(
    bureaus: list[str], stations: int, now: datetime, days: int = 3
) -> snapshot.SnapshotView:
    view = snapshot.SnapshotView()
    for key, value in snapshot_records(synthetic_observations(bureaus, stations, now, days)):
        view.accept(key, value)
    return view


def bureau_codes(n: int) -> list[str]:
    """n county codes spread over provinces and cities, like a real deployment."""
    provinces = ["11", "31", "32", "33", "35", "37", "42", "44", "51", "61"]
    return [f"{provinces[i % 10]}{(i // 10) % 20 + 1:02d}{i % 90 + 1:02d}" for i in range(n)]


async def store_figures(dsn: str, records: Iterable[tuple[str, bytes | None]]) -> int:
    """Write figure records into a metrics database as one commit of partition 0 would."""
    import asyncpg

    rows = list(records)
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            rev = await conn.fetchval(
                """INSERT INTO metrics_owners (role, partition, generation, rev)
                   VALUES ('items', 0, 1, 1) ON CONFLICT (role, partition)
                   DO UPDATE SET rev = metrics_owners.rev + 1 RETURNING rev"""
            )
            await conn.executemany(
                """INSERT INTO metrics_chunks (key, partition, rev, value) VALUES ($1, 0, $2, $3)
                   ON CONFLICT (key) DO UPDATE SET rev = excluded.rev, value = excluded.value""",
                [(key, rev, value) for key, value in rows],
            )
    finally:
        await conn.close()
    return len(rows)


@asynccontextmanager
async def figures_api(
    home: Path, broker: str, dsn: str
) -> AsyncIterator[tuple[httpx.AsyncClient, KernelSettings]]:
    """The metrics JSON API over a metrics database, once its reader has caught up."""
    from jingmin_metrics.entrypoints.app import create_app
    from jingmin_metrics.service import SERVICE

    await ensure_topics(broker, devstack.service_topics(SERVICE))
    settings = KernelSettings(
        jingmin_home=home,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        kafka_bootstrap_servers=broker,
    )
    app = create_app(settings, dsn=dsn)
    async with app.router.lifespan_context(app):
        await wait_for(lambda: app.state.reader.caught_up.is_set(), timeout=30)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://metrics.test") as c:
            yield c, settings
