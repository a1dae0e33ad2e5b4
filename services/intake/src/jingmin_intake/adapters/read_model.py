"""Postgres read model of cases and their deadlines, written in the command's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from eventkit.readmodel import deadline_arrays, deadlines_upsert
from eventkit.store import Change

from jingmin_intake.domain.case import Case


def projection(
    case: Case,
    branch: str | None,
    updated_at: datetime,
    source_ref: str | None = None,
) -> Change:
    """The upsert of the case row and its deadlines, as CTEs that can ride on the append.

    `branch` and `source_ref` come from the case's receipt and are only written with it.
    """
    return Change(
        (
            """INSERT INTO cases (case_id, bureau, station, channel, kind, priority,
                   area_type, branch, status, version, subject_id, received_at, updated_at,
                   source_ref)
               VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, 'other'), $9, $10, $11, $12,
                   $13, $19)
               ON CONFLICT (case_id) DO UPDATE SET status = excluded.status,
                   version = excluded.version, updated_at = excluded.updated_at""",
            deadlines_upsert("case_deadlines", "case_id", 14),
        ),
        (
            case.case_id,
            case.bureau,
            case.station,
            case.channel,
            case.kind,
            case.priority,
            case.area_type,
            branch,
            case.status,
            case.version,
            case.subject_id,
            case.received_at,
            updated_at,
            *deadline_arrays(case.deadlines),
            source_ref,
        ),
    )


async def project(
    conn: asyncpg.Connection,
    case: Case,
    branch: str | None,
    updated_at: datetime,
    source_ref: str | None = None,
) -> None:
    """Upsert the case row and its deadlines in one statement of its own."""
    change = projection(case, branch, updated_at, source_ref)
    await conn.execute(change.statement(), *change.args)


async def list_cases(
    conn: asyncpg.Connection,
    *,
    patterns: list[str],
    bureau: str | None,
    station: str | None,
    status: str | None,
    kind: str | None,
    channel: str | None,
    overdue: bool | None,
    limit: int,
    before: tuple[datetime, str] | None,
    source_ref: str | None = None,
) -> list[dict[str, Any]]:
    """Newest first, keyset-paginated; only cases inside the caller's scopes.

    Scopes are matched against the station code, which starts with its bureau's code, so a
    province, city, bureau or station scope each sees exactly its own cases.
    """
    rows = await conn.fetch(
        """SELECT c.case_id, c.bureau, c.station, c.channel, c.kind, c.priority, c.area_type,
                  c.branch, c.status, c.version, c.received_at, c.updated_at, c.source_ref,
                  (SELECT min(d.due_at) FROM case_deadlines d WHERE d.case_id = c.case_id
                     AND d.met_at IS NULL AND NOT d.cancelled) AS next_due_at
           FROM cases c
           WHERE c.station LIKE ANY ($1::text[])
             AND ($2::text IS NULL OR c.bureau = $2)
             AND ($3::text IS NULL OR c.station = $3)
             AND ($4::text IS NULL OR c.status = $4)
             AND ($5::text IS NULL OR c.kind = $5)
             AND ($6::text IS NULL OR c.channel = $6)
             AND ($7::boolean IS NULL OR $7 = EXISTS (
                   SELECT 1 FROM case_deadlines d WHERE d.case_id = c.case_id
                     AND d.met_at IS NULL AND NOT d.cancelled AND d.due_at < clock_timestamp()))
             AND ($8::timestamptz IS NULL OR (c.received_at, c.case_id) < ($8, $9::text))
             AND ($11::text IS NULL OR starts_with(c.source_ref, $11))
           ORDER BY c.received_at DESC, c.case_id DESC LIMIT $10""",
        patterns,
        bureau,
        station,
        status,
        kind,
        channel,
        overdue,
        before[0] if before else None,
        before[1] if before else None,
        limit,
        source_ref,
    )
    return [dict(r) for r in rows]


async def due_for_sweep(
    conn: asyncpg.Connection, default_grace_seconds: int, limit: int
) -> list[tuple[str, int, frozenset[str]]]:
    """(case id, grace seconds, deadline names) of promises due for longer than the grace.

    A promise is judged no sooner than the grace after it was *recorded* too: a case entered
    after the fact has its due times in the past already, and the step that meets them may
    be a moment behind it (1003_deadline_recorded_at.sql). The grace is applied in the scan
    itself, so a bureau with a long grace and many due rows cannot fill the batch and hold
    back every other bureau's breaches.
    """
    rows = await conn.fetch(
        """SELECT case_id, max(grace) AS grace, array_agg(deadline) AS deadlines FROM (
               SELECT d.case_id, d.deadline, g.grace FROM case_deadlines d
               CROSS JOIN LATERAL (SELECT coalesce((SELECT (p.policy->>'sweep_grace_seconds')::int
                    FROM bureau_policies p WHERE p.bureau = d.bureau), $1) AS grace) g
               WHERE d.met_at IS NULL AND NOT d.cancelled AND d.breached_at IS NULL
                 AND d.due_at < clock_timestamp() - make_interval(secs => g.grace)
                 AND d.recorded_at < clock_timestamp() - make_interval(secs => g.grace)
               ORDER BY d.due_at LIMIT $2) due
           GROUP BY case_id""",
        default_grace_seconds,
        limit,
    )
    return [(r["case_id"], r["grace"], frozenset(r["deadlines"])) for r in rows]
