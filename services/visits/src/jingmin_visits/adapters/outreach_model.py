"""Read models of visits and engagement events, upserted in the events' own transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from eventkit.store import RecordedEvent

from jingmin_visits.domain import visit as v
from jingmin_visits.domain.engagement import HELD, Engagement
from jingmin_visits.domain.visit import Visit


async def _remember_issues(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
    rows = [
        (
            e.data["issue_id"],
            e.data["source_type"],
            e.data["source_id"],
            e.data["issue_number"],
            e.bureau,
            e.data["station"],
            e.data["kind"],
            e.data.get("category"),
            e.occurred_at,
        )
        for e in events
        if e.type == v.ISSUE_RAISED
    ]
    if rows:
        await conn.executemany(
            """INSERT INTO raised_issues (issue_id, source_type, source_id, number, bureau,
                   station, kind, category, raised_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (issue_id) DO NOTHING""",
            rows,
        )


async def project_visit(
    conn: asyncpg.Connection, visit: Visit, events: list[RecordedEvent], now: datetime
) -> None:
    """Upsert the visit's row from the facts just recorded."""
    for e in events:
        d = e.data
        if e.type == v.SCHEDULED:
            await conn.execute(
                """INSERT INTO visits (visit_id, bureau, station, beat, programme, mode,
                       target_type, area_type, officer_id, officer_rank, subject_id, status,
                       planned_for, version, created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'scheduled', $12,
                       $13, $14, $14)""",
                visit.visit_id,
                e.bureau,
                d["station"],
                d.get("beat"),
                d["programme"],
                d["mode"],
                d["target_type"],
                d["area_type"],
                d["officer_id"],
                d["officer_rank"],
                d.get("subject_id"),
                datetime.fromisoformat(d["planned_for"]),
                e.version,
                now,
            )
        elif e.type == v.RESCHEDULED:
            await conn.execute(
                """UPDATE visits SET status = 'scheduled', planned_for = $2,
                       officer_id = coalesce($3, officer_id), version = $4, updated_at = $5
                   WHERE visit_id = $1""",
                visit.visit_id,
                datetime.fromisoformat(d["planned_for"]),
                d.get("officer_id"),
                e.version,
                now,
            )
        elif e.type in (v.COMPLETED, v.FAILED):
            await conn.execute(
                """UPDATE visits SET status = $2, outcome = $3, feedback = $4,
                       mode = coalesce($5, mode), visited_at = $6, attempts = attempts + 1,
                       issues = issues + $7, version = $8, updated_at = $9
                   WHERE visit_id = $1""",
                visit.visit_id,
                "completed" if e.type == v.COMPLETED else "failed",
                d["outcome"],
                d.get("feedback"),
                d.get("mode"),
                e.occurred_at,
                d.get("issues_count", 0),
                e.version,
                now,
            )
    await conn.execute(
        "UPDATE visits SET version = $2 WHERE visit_id = $1", visit.visit_id, visit.version
    )
    await _remember_issues(conn, events)


async def project_engagement(
    conn: asyncpg.Connection, engagement: Engagement, events: list[RecordedEvent], now: datetime
) -> None:
    held = next((e for e in events if e.type == HELD), None)
    if held is not None:
        d = held.data
        await conn.execute(
            """INSERT INTO engagements (engagement_id, bureau, station, type, venue, organiser,
                   participants, held_at, version, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9)""",
            engagement.engagement_id,
            held.bureau,
            d["station"],
            d["type"],
            d["venue"],
            d["organiser"],
            d["participants"],
            held.occurred_at,
            now,
        )
    await conn.execute(
        """UPDATE engagements SET opinions = $2, issues = $3, version = $4, updated_at = $5
           WHERE engagement_id = $1""",
        engagement.engagement_id,
        engagement.opinions,
        engagement.issues_raised,
        engagement.version,
        now,
    )
    await _remember_issues(conn, events)


async def list_visits(
    conn: asyncpg.Connection,
    *,
    patterns: Sequence[str],
    unit: str | None,
    officer_id: str | None,
    status: str | None,
    since: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Visits in scope, newest plan first; `unit` is a station or beat code prefix."""
    rows = await conn.fetch(
        """SELECT * FROM visits
           WHERE station LIKE ANY($1::text[])
             AND ($2::text IS NULL OR coalesce(beat, station) LIKE $2 || '%')
             AND ($3::text IS NULL OR officer_id = $3)
             AND ($4::text IS NULL OR status = $4)
             AND ($5::timestamptz IS NULL OR planned_for >= $5)
           ORDER BY planned_for DESC, visit_id LIMIT $6""",
        list(patterns),
        unit,
        officer_id,
        status,
        since,
        limit,
    )
    return [dict(r) for r in rows]


async def list_engagements(
    conn: asyncpg.Connection, *, patterns: Sequence[str], station: str | None, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT * FROM engagements
           WHERE station LIKE ANY($1::text[]) AND ($2::text IS NULL OR station = $2)
           ORDER BY held_at DESC, engagement_id LIMIT $3""",
        list(patterns),
        station,
        limit,
    )
    return [dict(r) for r in rows]


async def issues_of(conn: asyncpg.Connection, source_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM raised_issues WHERE source_id = $1 ORDER BY number", source_id
    )
    return [dict(r) for r in rows]
