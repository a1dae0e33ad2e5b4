"""Where a complainant can be reached, still encrypted: the complaints side of the contact API."""

from __future__ import annotations

import json

import asyncpg
from eventkit.contacts import ContactSource


async def complaint_contact(conn: asyncpg.Connection, complaint_id: str) -> ContactSource | None:
    """The complaint's unit, complainant and encrypted name and phone, or None.

    The receipt is the only event that carries the complainant. An anonymous complainant
    has no contact (and their random reference links to nothing), so none is lent. A
    complaint opened from an intake case or a callback holds no contact of its own: the
    person's details stay with intake (the complaint id is the intake case id for the
    former), and the answer says so by carrying no name and no phone.
    """
    row = await conn.fetchrow(
        """SELECT c.station, c.subject_id, c.anonymous,
                  (e.data -> 'complainant' -> 'name')::text AS name,
                  (e.data -> 'complainant' -> 'phone')::text AS phone
           FROM complaints c
           LEFT JOIN events e ON e.stream_id = c.complaint_id AND e.version = 1
           WHERE c.complaint_id = $1""",
        complaint_id,
    )
    if row is None:
        return None
    if row["anonymous"]:
        return ContactSource(station=row["station"], subject_id=None)
    return ContactSource(
        station=row["station"],
        subject_id=row["subject_id"],
        name=json.loads(row["name"]) if row["name"] else None,
        phone=json.loads(row["phone"]) if row["phone"] else None,
    )
