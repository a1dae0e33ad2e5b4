"""Postgres read models of complaints and supervision, written in the command's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from eventkit.readmodel import deadline_arrays, deadlines_upsert
from eventkit.store import Change

from jingmin_complaints.domain.complaint import Complaint
from jingmin_complaints.domain.supervision import Accountability, Inspection, Order

Aggregate = Complaint | Order | Inspection | Accountability


def projection(item: Aggregate, updated_at: datetime) -> Change:
    """The upsert of an aggregate's read-model row, as CTEs that can ride on the append."""
    if isinstance(item, Complaint):
        return _complaint(item, updated_at)
    if isinstance(item, Order):
        return _order(item, updated_at)
    if isinstance(item, Inspection):
        return _inspection(item, updated_at)
    return _accountability(item)


def _complaint(c: Complaint, updated_at: datetime) -> Change:
    return Change(
        (
            """INSERT INTO complaints (complaint_id, bureau, station, subject_unit, channel,
                   category, status, level, version, subject_id, anonymous, investigator_unit,
                   extended, outcome, on_time, fixed, reopened, receipt_hash, intake_case_id,
                   callback_id, received_at, acknowledged_at, concluded_at, closed_at,
                   updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                   $17, $18, $19, $20, $21, $22, $23, $24, $25)
               ON CONFLICT (complaint_id) DO UPDATE SET station = excluded.station,
                   subject_unit = excluded.subject_unit, category = excluded.category,
                   status = excluded.status, level = excluded.level,
                   version = excluded.version, investigator_unit = excluded.investigator_unit,
                   extended = excluded.extended, outcome = excluded.outcome,
                   on_time = excluded.on_time, fixed = excluded.fixed,
                   reopened = excluded.reopened, acknowledged_at = excluded.acknowledged_at,
                   concluded_at = excluded.concluded_at, closed_at = excluded.closed_at,
                   updated_at = excluded.updated_at""",
            deadlines_upsert("complaint_deadlines", "complaint_id", 26),
        ),
        (
            c.complaint_id,
            c.bureau,
            c.station,
            c.subject_unit,
            c.channel,
            c.category,
            c.status,
            c.level,
            c.version,
            c.subject_id,
            c.anonymous,
            c.investigator_unit,
            c.extended,
            c.outcome,
            c.on_time,
            c.fixed,
            c.reopened,
            c.receipt_hash,
            c.intake_case_id,
            c.callback_id,
            c.received_at,
            c.acknowledged_at,
            c.concluded_at,
            c.closed_at,
            updated_at,
            *deadline_arrays(c.deadlines),
        ),
    )


def _order(o: Order, updated_at: datetime) -> Change:
    return Change(
        (
            """INSERT INTO supervision_orders (order_id, bureau, station, owner_unit, order_type,
               item_type, item_id, level, status, due_at, breached, escalations, verdict,
               case_id, callback_id, version, issued_at, reported_at, closed_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
               $18, $19, $20)
           ON CONFLICT (order_id) DO UPDATE SET owner_unit = excluded.owner_unit,
               level = excluded.level, status = excluded.status, due_at = excluded.due_at,
               breached = excluded.breached, escalations = excluded.escalations,
               verdict = excluded.verdict, version = excluded.version,
               reported_at = excluded.reported_at, closed_at = excluded.closed_at,
               updated_at = excluded.updated_at""",
        ),
        (
            o.order_id,
            o.bureau,
            o.station,
            o.owner_unit,
            o.order_type,
            o.item_type,
            o.item_id,
            o.level,
            o.status,
            o.due_at,
            o.breached,
            o.escalations,
            o.verdict,
            o.case_id,
            o.callback_id,
            o.version,
            o.issued_at,
            o.reported_at,
            o.closed_at,
            updated_at,
        ),
    )


def _inspection(i: Inspection, updated_at: datetime) -> Change:
    return Change(
        (
            """INSERT INTO inspections (inspection_id, bureau, station, unit, kind, status,
               findings, deficiencies, violations, version, started_at, completed_at,
               updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           ON CONFLICT (inspection_id) DO UPDATE SET status = excluded.status,
               findings = excluded.findings, deficiencies = excluded.deficiencies,
               violations = excluded.violations, version = excluded.version,
               completed_at = excluded.completed_at, updated_at = excluded.updated_at""",
        ),
        (
            i.inspection_id,
            i.bureau,
            i.station,
            i.unit,
            i.kind,
            i.status,
            i.findings,
            i.deficiencies,
            i.violations,
            i.version,
            i.started_at,
            i.completed_at,
            updated_at,
        ),
    )


def _accountability(a: Accountability) -> Change:
    return Change(
        (
            """INSERT INTO accountability_actions (action_id, bureau, station, unit, kind,
               basis_type, basis_id, taken_at, version)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (action_id) DO UPDATE SET version = excluded.version""",
        ),
        (
            a.action_id,
            a.bureau,
            a.station,
            a.unit,
            a.kind,
            a.basis_type,
            a.basis_id,
            a.taken_at,
            a.version,
        ),
    )


# ---- queries -------------------------------------------------------------------------------

_NEXT_DUE = """(SELECT min(d.due_at) FROM complaint_deadlines d WHERE d.complaint_id =
                c.complaint_id AND d.met_at IS NULL AND NOT d.cancelled)"""


async def list_complaints(
    conn: asyncpg.Connection,
    *,
    patterns: list[str],
    station: str | None,
    status: str | None,
    category: str | None,
    overdue: bool | None,
    now: datetime,
    limit: int,
    before: tuple[datetime, str] | None,
) -> list[dict[str, Any]]:
    """Newest first, keyset-paginated, only inside the caller's scopes (matched on station)."""
    rows = await conn.fetch(
        f"""SELECT c.*, {_NEXT_DUE} AS next_due_at FROM complaints c
            WHERE c.station LIKE ANY ($1::text[])
              AND ($2::text IS NULL OR c.station LIKE $2 || '%')
              AND ($3::text IS NULL OR c.status = $3)
              AND ($4::text IS NULL OR c.category = $4)
              AND ($5::boolean IS NULL OR $5 = coalesce({_NEXT_DUE} < $6, false))
              AND ($7::timestamptz IS NULL OR (c.received_at, c.complaint_id) < ($7, $8::text))
            ORDER BY c.received_at DESC, c.complaint_id DESC LIMIT $9""",
        patterns,
        station,
        status,
        category,
        overdue,
        now,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return [dict(r) for r in rows]


async def complaint_row(conn: asyncpg.Connection, complaint_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT c.*, {_NEXT_DUE} AS next_due_at FROM complaints c WHERE complaint_id = $1",
        complaint_id,
    )
    return dict(row) if row else None


async def complaint_deadlines(conn: asyncpg.Connection, complaint_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT deadline, due_at, met_at, breached_at, cancelled FROM complaint_deadlines
           WHERE complaint_id = $1 ORDER BY due_at""",
        complaint_id,
    )
    return [dict(r) for r in rows]


async def complaint_by_receipt(
    conn: asyncpg.Connection, receipt_hash: str
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"""SELECT c.complaint_id, c.bureau, c.status, c.category, c.outcome, c.received_at,
                   c.acknowledged_at, c.concluded_at, c.closed_at, c.extended, c.anonymous,
                   {_NEXT_DUE} AS next_due_at
            FROM complaints c WHERE receipt_hash = $1""",
        receipt_hash,
    )
    return dict(row) if row else None


async def list_orders(
    conn: asyncpg.Connection,
    *,
    patterns: list[str],
    station: str | None,
    status: str | None,
    order_type: str | None,
    level: str | None,
    item_id: str | None,
    now: datetime,
    limit: int,
    before: tuple[datetime, str] | None,
) -> list[dict[str, Any]]:
    """Orders in scope, newest first; status=overdue: issued and past due, swept or not yet."""
    overdue = status == "overdue"
    rows = await conn.fetch(
        """SELECT o.*, (o.status = 'issued' AND o.due_at < $3) AS overdue
           FROM supervision_orders o
           WHERE o.station LIKE ANY ($1::text[])
             AND ($2::text IS NULL OR o.station LIKE $2 || '%')
             AND (NOT $4::boolean OR (o.status = 'issued' AND o.due_at < $3))
             AND ($5::text IS NULL OR o.status = $5)
             AND ($6::text IS NULL OR o.order_type = $6)
             AND ($7::text IS NULL OR o.level = $7)
             AND ($8::text IS NULL OR o.item_id = $8)
             AND ($9::timestamptz IS NULL OR (o.issued_at, o.order_id) < ($9, $10::text))
           ORDER BY o.issued_at DESC, o.order_id DESC LIMIT $11""",
        patterns,
        station,
        now,
        overdue,
        None if overdue else status,
        order_type,
        level,
        item_id,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return [dict(r) for r in rows]


async def order_row(
    conn: asyncpg.Connection, order_id: str, now: datetime
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT o.*, (o.status = 'issued' AND o.due_at < $2) AS overdue
           FROM supervision_orders o WHERE order_id = $1""",
        order_id,
        now,
    )
    return dict(row) if row else None


async def list_rows(
    conn: asyncpg.Connection, table: str, order_by: str, patterns: list[str], limit: int
) -> list[dict[str, Any]]:
    """Inspections or accountability actions in scope, newest first."""
    if table not in ("inspections", "accountability_actions"):
        raise ValueError(table)
    rows = await conn.fetch(
        f"""SELECT * FROM {table} WHERE station LIKE ANY ($1::text[])
            ORDER BY {order_by} DESC LIMIT $2""",
        patterns,
        limit,
    )
    return [dict(r) for r in rows]


async def complaints_due(
    conn: asyncpg.Connection, now: datetime, default_grace: int, limit: int
) -> list[tuple[str, int]]:
    """(complaint id, grace seconds) with a promise due for longer than its bureau's grace."""
    rows = await conn.fetch(
        """SELECT complaint_id, max(grace) AS grace FROM (
               SELECT d.complaint_id, g.grace FROM complaint_deadlines d
               CROSS JOIN LATERAL (SELECT coalesce((SELECT (p.policy->>'sweep_grace_seconds')::int
                    FROM bureau_policies p WHERE p.bureau = d.bureau), $2) AS grace) g
               WHERE d.met_at IS NULL AND NOT d.cancelled AND d.breached_at IS NULL
                 AND d.due_at < $1::timestamptz - make_interval(secs => g.grace)
               ORDER BY d.due_at LIMIT $3) due
           GROUP BY complaint_id""",
        now,
        default_grace,
        limit,
    )
    return [(r["complaint_id"], r["grace"]) for r in rows]


async def orders_due(
    conn: asyncpg.Connection, now: datetime, default_grace: int, limit: int
) -> list[tuple[str, int]]:
    rows = await conn.fetch(
        """SELECT o.order_id, g.grace FROM supervision_orders o
           CROSS JOIN LATERAL (SELECT coalesce((SELECT (p.policy->>'sweep_grace_seconds')::int
                FROM bureau_policies p WHERE p.bureau = o.bureau), $2) AS grace) g
           WHERE o.status = 'issued' AND NOT o.breached
             AND o.due_at < $1::timestamptz - make_interval(secs => g.grace)
           ORDER BY o.due_at LIMIT $3""",
        now,
        default_grace,
        limit,
    )
    return [(r["order_id"], r["grace"]) for r in rows]


async def remember_callback(conn: asyncpg.Connection, data: dict[str, Any]) -> None:
    await conn.execute(
        """INSERT INTO callbacks_seen (callback_id, case_id, trigger, subject_id, bureau, station)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (callback_id) DO NOTHING""",
        data["callback_id"],
        data.get("case_id"),
        data.get("trigger"),
        data.get("subject_id"),
        data["bureau"],
        data["station"],
    )


async def callback_seen(conn: asyncpg.Connection, callback_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM callbacks_seen WHERE callback_id = $1", callback_id)
    return dict(row) if row else None


async def remember_party(conn: asyncpg.Connection, case_id: str, party_category: str) -> None:
    await conn.execute(
        """INSERT INTO case_parties (case_id, party_category) VALUES ($1, $2)
           ON CONFLICT (case_id) DO NOTHING""",
        case_id,
        party_category,
    )


async def party_of(conn: asyncpg.Connection, case_id: str | None) -> str | None:
    """The party category of an intake case seen, or None (unknown case, or none recorded)."""
    if not case_id:
        return None
    value: str | None = await conn.fetchval(
        "SELECT party_category FROM case_parties WHERE case_id = $1", case_id
    )
    return value
