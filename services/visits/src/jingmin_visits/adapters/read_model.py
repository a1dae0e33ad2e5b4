"""The callbacks read model and the consumer's per-case facts (same transaction as events)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg
from eventkit.auth import Principal
from eventkit.contacts import ReadResult
from eventkit.store import Change

from jingmin_visits.domain.callback import Callback, Resolution
from jingmin_visits.domain.vocabulary import Status


async def remember_case(conn: asyncpg.Connection, data: Mapping[str, Any], at: datetime) -> None:
    """Facts from CaseReceived; a replayed copy rewrites the same values."""
    await conn.execute(
        """INSERT INTO intake_cases (case_id, bureau, station, kind, channel, category,
               subject_id, received_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (case_id) DO UPDATE SET bureau = excluded.bureau,
               station = excluded.station, kind = excluded.kind, channel = excluded.channel,
               category = excluded.category, subject_id = excluded.subject_id,
               received_at = excluded.received_at""",
        data["case_id"],
        data["bureau"],
        data["station"],
        data["kind"],
        data["channel"],
        data.get("category"),
        data.get("subject_id"),
        at,
    )


_RETURNING = "RETURNING kind, channel, category, subject_id, classified_category"


async def resolution_of(
    conn: asyncpg.Connection, data: Mapping[str, Any], at: datetime
) -> Resolution | None:
    """The resolved case as the policy sees it: receipt facts plus the resolution's unit."""
    row = await conn.fetchrow(
        f"UPDATE intake_cases SET resolved_at = $2 WHERE case_id = $1 {_RETURNING}",
        data["case_id"],
        at,
    )
    return _as_resolution(row, data, at)


async def follow_up_of(
    conn: asyncpg.Connection, data: Mapping[str, Any], at: datetime
) -> Resolution | None:
    """A case's enforcement decision or classification as the policy sees it: receipt facts,
    the event's unit and time, and the category the case was classified under (remembered
    here, so a later callback on the same case is suppressed by it too)."""
    row = await conn.fetchrow(
        """UPDATE intake_cases SET classified_category = coalesce($2, classified_category)
           WHERE case_id = $1 """
        + _RETURNING,
        data["case_id"],
        data.get("category"),
    )
    return _as_resolution(row, data, at)


def _as_resolution(
    row: asyncpg.Record | None, data: Mapping[str, Any], at: datetime
) -> Resolution | None:
    if row is None:
        return None
    return Resolution(
        case_id=data["case_id"],
        bureau=data["bureau"],
        station=data["station"],
        kind=row["kind"],
        channel=row["channel"],
        category=row["category"],
        subject_id=row["subject_id"],
        resolved_at=at,
        classified_category=row["classified_category"],
    )


async def is_opted_out(conn: asyncpg.Connection, subject_id: str | None) -> bool:
    if not subject_id:
        return False
    found = await conn.fetchval("SELECT true FROM opt_outs WHERE subject_id = $1", subject_id)
    return bool(found)


async def project(
    conn: asyncpg.Connection,
    cb: Callback,
    data: Mapping[str, Any],
    at: datetime,
) -> None:
    """Upsert the callback's row from its state after the newest facts."""
    change = projection(cb, data, at)
    await conn.execute(change.statement(), *change.args)


def projection(cb: Callback, data: Mapping[str, Any], at: datetime) -> Change:
    """The callback row's upsert, from its state after the newest facts (`data`: the last)."""
    return Change(
        (
            """INSERT INTO callbacks (callback_id, case_id, trigger, bureau, station, subject_id,
               status, mode, due_at, original_due_at, expires_at, suppression_reason,
               attempts, last_outcome, satisfaction, security, version, created_at, updated_at,
               survey_sent_at, wants_complaint, assignee, purpose)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
               $17, $18, $18, $19, $20, $21, $22)
           ON CONFLICT (callback_id) DO UPDATE SET status = excluded.status,
               attempts = excluded.attempts,
               last_outcome = coalesce(excluded.last_outcome, callbacks.last_outcome),
               satisfaction = coalesce(excluded.satisfaction, callbacks.satisfaction),
               security = coalesce(excluded.security, callbacks.security),
               survey_sent_at = coalesce(excluded.survey_sent_at, callbacks.survey_sent_at),
               wants_complaint = coalesce(excluded.wants_complaint, callbacks.wants_complaint),
               assignee = excluded.assignee,
               version = excluded.version, updated_at = excluded.updated_at""",
        ),
        (
            cb.callback_id,
            cb.case_id,
            cb.trigger,
            cb.bureau,
            cb.station,
            cb.subject_id,
            cb.status,
            cb.mode or None,
            cb.due_at,
            _time(data.get("original_due_at")),
            cb.expires_at,
            data.get("reason"),
            cb.attempts,
            data.get("outcome"),
            data.get("satisfaction"),
            data.get("security"),
            cb.version,
            at,
            at if "link_expires_at" in data else None,
            data.get("wants_complaint"),
            cb.assignee,
            cb.purpose,
        ),
    )


async def mark_dispatched(conn: asyncpg.Connection, callback_id: str, at: datetime) -> None:
    """The dispatcher is done with this callback even though no link went out (no contact)."""
    await conn.execute(
        "UPDATE callbacks SET survey_sent_at = $2 WHERE callback_id = $1", callback_id, at
    )


async def sms_to_send(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT callback_id, bureau FROM callbacks
           WHERE status = 'scheduled' AND mode = 'sms' AND survey_sent_at IS NULL
           ORDER BY created_at LIMIT $1""",
        limit,
    )
    return rows


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


async def list_callbacks(
    conn: asyncpg.Connection,
    *,
    patterns: list[str],
    station: str | None,
    status: str | None,
    now: datetime,
    end_of_day: datetime,
    limit: int,
    assignee: str | None = None,
) -> list[asyncpg.Record]:
    """Callbacks in scope: `due` (open, due by the end of today), `overdue`, or a status."""
    params: list[Any] = [patterns, station, assignee]
    where = [
        "station LIKE ANY($1)",
        "($2::text IS NULL OR station = $2)",
        "($3::text IS NULL OR assignee = $3)",
    ]
    if status == "due":
        params += [now, end_of_day]
        where.append("status = 'scheduled' AND due_at >= $4 AND due_at < $5")
    elif status == "overdue":
        params.append(now)
        where.append("status = 'scheduled' AND due_at < $4")
    elif status is not None:
        params.append(status)
        where.append("status = $4")
    params.append(limit)
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT * FROM callbacks WHERE {" AND ".join(where)}
            ORDER BY due_at NULLS LAST, callback_id LIMIT ${len(params)}""",
        *params,
    )
    return rows


async def expiring(conn: asyncpg.Connection, now: datetime, limit: int) -> list[str]:
    rows = await conn.fetch(
        """SELECT callback_id FROM callbacks WHERE status = $1 AND expires_at <= $2
           ORDER BY expires_at LIMIT $3""",
        Status.SCHEDULED.value,
        now,
        limit,
    )
    return [r["callback_id"] for r in rows]


async def case_facts(conn: asyncpg.Connection, case_id: str) -> dict[str, Any]:
    """What visits remembers of an intake case (empty for a complaint or an unknown case)."""
    row = await conn.fetchrow(
        "SELECT kind, channel, category, subject_id FROM intake_cases WHERE case_id = $1", case_id
    )
    return {k: v for k, v in dict(row).items() if v is not None} if row else {}


async def audit_read(
    conn: asyncpg.Connection, principal: Principal, cb: Callback, result: ReadResult, status: int
) -> None:
    """Which officer borrowed a contact through this service, for which callback, and what
    came of it (the owner's own audit only knows this service asked)."""
    await record_read(
        conn, principal, "callback", cb.case_id, cb.subject_id, cb.station, result.value,
        status, cb.callback_id,
    )  # fmt: skip


async def record_read(
    conn: asyncpg.Connection,
    principal: Principal,
    purpose: str,
    item_id: str,
    subject_id: str | None,
    station: str | None,
    result: str,
    status: int,
    correlation_id: str | None,
) -> None:
    """One row of the contact-read audit trail (append-only, kernel migration 0005)."""
    await conn.execute(
        """INSERT INTO contact_reads (reader, roles, scopes, purpose, item_id, subject_id,
               station, result, status, correlation_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        principal.subject,
        sorted(principal.roles),
        list(principal.scopes),
        purpose,
        item_id,
        subject_id,
        station,
        result,
        status,
        correlation_id,
    )


async def remember_complaint(
    conn: asyncpg.Connection, complaint_id: str, intake_case_id: str | None, callback_id: str | None
) -> None:
    await conn.execute(
        """INSERT INTO complaint_origins (complaint_id, intake_case_id, callback_id)
           VALUES ($1, $2, $3) ON CONFLICT (complaint_id) DO NOTHING""",
        complaint_id,
        intake_case_id,
        callback_id,
    )


async def complaint_origin(conn: asyncpg.Connection, complaint_id: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT intake_case_id, callback_id FROM complaint_origins WHERE complaint_id = $1",
        complaint_id,
    )
    return dict(row) if row else {}
