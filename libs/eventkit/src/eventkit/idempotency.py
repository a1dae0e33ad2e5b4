"""Idempotency-Key for POST: a retry returns the first answer and writes nothing new."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from eventkit.problems import Problem

MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any


def request_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\n".join([method.encode(), path.encode(), body])).hexdigest()


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise Problem(
            400,
            "Bad Idempotency-Key",
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
            type_="urn:jingmin:problem:idempotency-key",
        )


async def claim(
    conn: asyncpg.Connection, principal: str, key: str, fingerprint: str
) -> StoredResponse | None:
    """Inside the write transaction: serialise same-key requests, return an earlier answer.

    The transaction-scoped advisory lock makes a concurrent retry wait for the first attempt
    to commit or roll back, so two attempts can never both write.
    """
    # PostgreSQL text cannot hold NUL; a length prefix keeps (principal, key) unambiguous.
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        f"{len(principal)}:{principal}{key}",
    )
    row = await conn.fetchrow(
        "SELECT request_hash, status, body::text AS body FROM idempotency_keys "
        "WHERE principal = $1 AND key = $2",
        principal,
        key,
    )
    if row is None:
        return None
    if row["request_hash"] != fingerprint:
        raise Problem(
            422,
            "Idempotency-Key reused",
            "this Idempotency-Key was already used for a different request",
            type_="urn:jingmin:problem:idempotency-key-reused",
        )
    return StoredResponse(row["status"], json.loads(row["body"]))


async def remember(
    conn: asyncpg.Connection, principal: str, key: str, fingerprint: str, status: int, body: Any
) -> None:
    await conn.execute(
        """INSERT INTO idempotency_keys (principal, key, request_hash, status, body)
           VALUES ($1, $2, $3, $4, $5::jsonb)""",
        principal,
        key,
        fingerprint,
        status,
        json.dumps(body, ensure_ascii=False, default=str),
    )
