"""Where a case's person can be reached, still encrypted: the intake side of the contact API."""

from __future__ import annotations

import json

import asyncpg
from eventkit.contacts import ContactSource


async def case_contact(conn: asyncpg.Connection, case_id: str) -> ContactSource | None:
    """The case's unit, subject and encrypted name and phone (from its receipt), or None.

    The receipt is the only event that carries the person; the read model gives the unit the
    caller's scope is checked against.
    """
    row = await conn.fetchrow(
        """SELECT c.station, c.subject_id,
                  (e.data -> 'person' -> 'name')::text AS name,
                  (e.data -> 'person' -> 'phone')::text AS phone
           FROM cases c
           LEFT JOIN events e ON e.stream_id = c.case_id AND e.version = 1
           WHERE c.case_id = $1""",
        case_id,
    )
    if row is None:
        return None
    return ContactSource(
        station=row["station"],
        subject_id=row["subject_id"],
        name=json.loads(row["name"]) if row["name"] else None,
        phone=json.loads(row["phone"]) if row["phone"] else None,
    )
