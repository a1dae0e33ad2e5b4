"""`jingmin verify metrics`: the streamed figures against a batch recomputation in SQL.

Reads the processors' results the way the exporter does (the metrics database),
recomputes every cell from the event stores (`oracle/sql.py`), and prints each difference.
Zero differences is the pass condition of the tests and of the chaos suite. With `--wait`,
it re-checks until the figures converge or the time is up (the pipeline may still be
catching up: the report then also says how many events it has not applied yet).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg
from eventkit.service import load_services
from eventkit.settings import KernelSettings, service_dsn

from jingmin_metrics.adapters.figures_reader import FiguresReader
from jingmin_metrics.domain.cells import CellKey, Value
from jingmin_metrics.domain.facts import RULES
from jingmin_metrics.domain.measures import BUCKETS_MS, HIST_WIDTH, MEASURES, Kind
from jingmin_metrics.figures.snapshot import Merged
from jingmin_metrics.oracle import sql

# Stored event name -> the short name of its fact ("CaseReceived" -> "received").
SHORT_NAMES = {ce.split(".")[2]: rule.short for ce, rule in RULES.items()}

_AGGREGATE = """
SELECT m, bureau, day, dims, bucket, count(*)::bigint AS n, sum(val)::bigint AS total
FROM (
    SELECT m, bureau,
           CASE WHEN at IS NULL THEN 'now'
                ELSE to_char(at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD') END AS day,
           dims, val,
           (SELECT count(*) FROM unnest($2::bigint[]) b WHERE b < val)::int AS bucket
    FROM ({observations}) o
) q
GROUP BY m, bureau, day, dims, bucket
"""


@dataclass
class Recomputed:
    cells: Merged = field(default_factory=dict)
    facts: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(
        self, m: str, bureau: str, day: str, dims: Sequence[str], bucket: int, n: int, total: int
    ) -> None:
        chunk = self.cells.setdefault((bureau, day), {})
        key: CellKey = (m, tuple(dims))
        if MEASURES[m].kind is Kind.HISTOGRAM:
            vector = chunk.get(key)
            if not isinstance(vector, list):
                vector = [0] * HIST_WIDTH
            vector[0] += n
            vector[1] += total
            vector[2 + bucket] += n
            chunk[key] = vector
        else:
            # A count's observation value is 1, or an amount (engagement participants).
            current = chunk.get(key)
            chunk[key] = (current if isinstance(current, int) else 0) + total


def service_dsns(settings: KernelSettings) -> dict[str, str]:
    """Each installed service's database (what `jingmin verify metrics` reads)."""
    return {name: service_dsn(settings, spec.database) for name, spec in load_services().items()}


async def _connect(dsns: Mapping[str, str], name: str) -> asyncpg.Connection | None:
    if name not in dsns:
        return None
    try:
        conn: asyncpg.Connection = await asyncpg.connect(dsns[name], timeout=10)
    except asyncpg.InvalidCatalogNameError:
        return None
    return conn


async def recompute(dsns: Mapping[str, str]) -> Recomputed:
    """Every cell, from the event stores alone (`dsns`: service name → its database)."""
    out = Recomputed()
    buckets = list(BUCKETS_MS)
    case_dims: list[asyncpg.Record] = []
    intake = await _connect(dsns, "intake")
    if intake is None:
        out.notes.append("no intake database: intake figures not recomputed")
    else:
        try:
            # One snapshot per database: the figures and the count of events they come from
            # must see the same events, or a live sweeper's breach lands between them.
            async with intake.transaction(isolation="repeatable_read", readonly=True):
                for row in await intake.fetch(
                    _AGGREGATE.format(observations=sql.INTAKE_OBSERVATIONS),
                    sql.INTAKE_TYPES,
                    buckets,
                ):
                    out.add(*row)
                case_dims = await intake.fetch(sql.CASE_DIMENSIONS)
                await _count(intake, out, sql.INTAKE_TYPES)
        finally:
            await intake.close()
    visits = await _connect(dsns, "visits")
    if visits is None:
        out.notes.append("no visits database: callback figures not recomputed")
    else:
        try:
            async with visits.transaction(isolation="repeatable_read"):
                await visits.execute(
                    """CREATE TEMPORARY TABLE case_dims (
                           case_id text PRIMARY KEY, bureau text, station text, channel text,
                           kind text, branch text, area_type text, party_category text,
                           category text, officer text) ON COMMIT DROP"""
                )
                await visits.copy_records_to_table(
                    "case_dims", records=[tuple(r) for r in case_dims]
                )
                for row in await visits.fetch(
                    _AGGREGATE.format(observations=sql.CALLBACK_OBSERVATIONS),
                    sql.CALLBACK_TYPES,
                    buckets,
                ):
                    out.add(*row)
                await _gather(visits, out, sql.VISIT_OBSERVATIONS, sql.VISIT_TYPES)
                await _gather(visits, out, sql.SURVEY_OBSERVATIONS, sql.SURVEY_TYPES)
                await _count(visits, out, sql.CALLBACK_TYPES)
        finally:
            await visits.close()
    complaints = await _connect(dsns, "complaints")
    if complaints is None:
        out.notes.append("no complaints database: complaint and supervision figures not recomputed")
    else:
        try:
            async with complaints.transaction(isolation="repeatable_read", readonly=True):
                await _gather(complaints, out, sql.COMPLAINT_OBSERVATIONS, sql.COMPLAINT_TYPES)
                await _gather(complaints, out, sql.ORDER_OBSERVATIONS, sql.ORDER_TYPES)
                await _gather(complaints, out, sql.INSPECTION_OBSERVATIONS, sql.INSPECTION_TYPES)
        finally:
            await complaints.close()
    return out


async def _gather(
    conn: asyncpg.Connection, out: Recomputed, observations: str, types: list[str]
) -> None:
    for row in await conn.fetch(
        _AGGREGATE.format(observations=observations), types, list(BUCKETS_MS)
    ):
        out.add(*row)
    await _count(conn, out, types)


async def _count(conn: asyncpg.Connection, out: Recomputed, types: list[str]) -> None:
    """Stored events the processors should have applied, by their short fact name."""
    for row in await conn.fetch(
        "SELECT type, count(*) AS n FROM events WHERE type = ANY($1::text[]) GROUP BY type",
        types,
    ):
        short = SHORT_NAMES[row["type"]]
        out.by_type[short] = out.by_type.get(short, 0) + row["n"]
        out.facts += row["n"]


@dataclass(frozen=True)
class Difference:
    bureau: str
    day: str
    measure: str
    dims: tuple[str, ...]
    streamed: Value | None
    recomputed: Value | None

    def __str__(self) -> str:
        return (
            f"{self.bureau} {self.day} {self.measure} {list(self.dims)}: "
            f"streamed={self.streamed} recomputed={self.recomputed}"
        )


def compare(streamed: Merged, recomputed: Merged) -> list[Difference]:
    diffs: list[Difference] = []
    for chunk_key in sorted(set(streamed) | set(recomputed)):
        a = streamed.get(chunk_key, {})
        b = recomputed.get(chunk_key, {})
        for cell in sorted(set(a) | set(b)):
            if a.get(cell) != b.get(cell):
                diffs.append(
                    Difference(
                        chunk_key[0], chunk_key[1], cell[0], cell[1], a.get(cell), b.get(cell)
                    )
                )
    return diffs


@dataclass
class Report:
    differences: list[Difference]
    cells: int
    streamed_facts: int
    stored_facts: int
    notes: list[str]
    missing_by_type: dict[str, int] = field(default_factory=dict)


async def verify_once(dsns: Mapping[str, str], bootstrap: str) -> Report:
    recomputed = await recompute(dsns)
    view = await FiguresReader(dsns["metrics"]).catch_up()
    streamed = view.merged()
    cells = len(
        {(c, k) for c, cs in streamed.items() for k in cs}
        | {(c, k) for c, cs in recomputed.cells.items() for k in cs}
    )
    applied = view.facts_by_type()
    missing = {
        t: n - applied.get(t, 0)
        for t, n in sorted(recomputed.by_type.items())
        if n != applied.get(t, 0)
    }
    return Report(
        compare(streamed, recomputed.cells),
        cells,
        view.facts(),
        recomputed.facts,
        recomputed.notes,
        missing,
    )


async def verify(
    dsns: Mapping[str, str],
    bootstrap: str,
    *,
    wait: float = 0.0,
    echo: Callable[[str], None] = print,
    limit: int = 50,
) -> int:
    """Print the differences; 0 when there are none and every stored event is applied.

    With `wait`, retry while converging. An event never applied may change no figure yet
    (a visit scheduled, a callback attempted) and still be lost: it counts as a failure.
    """
    deadline = time.monotonic() + wait
    while True:
        report = await verify_once(dsns, bootstrap)
        # Equal, not only caught up: processors that applied more than the recomputation saw
        # have events stored after its snapshot, and the differences may be theirs.
        caught_up = report.streamed_facts == report.stored_facts
        if (not report.differences and caught_up) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(1.0)
    for note in report.notes:
        echo(f"note: {note}")
    for diff in report.differences[:limit]:
        echo(str(diff))
    if len(report.differences) > limit:
        echo(f"... and {len(report.differences) - limit} more")
    behind = report.stored_facts - report.streamed_facts
    echo(
        f"metrics: {report.cells} cells compared, {len(report.differences)} differences; "
        f"events applied {report.streamed_facts} of {report.stored_facts} stored"
        + (f" ({behind} not yet applied)" if behind > 0 else "")
        + (
            f" ({-behind} applied that were stored after the recomputation began: run again)"
            if behind < 0
            else ""
        )
    )
    if report.missing_by_type:
        echo(f"stored minus applied, by type: {report.missing_by_type}")
    return 0 if not report.differences and behind <= 0 else 1


def main(wait: float = 0.0, bootstrap: str | None = None) -> int:
    """Entry point of `jingmin verify metrics` (entry point group `jingmin.verify`)."""
    from jingmin_metrics.settings import metrics_settings

    settings = metrics_settings()
    code = asyncio.run(
        verify(
            service_dsns(settings),
            bootstrap or settings.kafka_bootstrap_servers,
            wait=wait,
        )
    )
    sys.stdout.flush()
    return code
