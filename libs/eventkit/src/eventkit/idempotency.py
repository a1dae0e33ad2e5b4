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


def _reused() -> Problem:
    return Problem(
        422,
        "Idempotency-Key reused",
        "this Idempotency-Key was already used for a different request",
        type_="urn:jingmin:problem:idempotency-key-reused",
    )


def _stored(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, default=str)


class InMemoryKeys:
    """The answers given per (principal, key), for the in-memory unit of work."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], tuple[str, int, str]] = {}

    def claim(self, principal: str, key: str, fingerprint: str) -> StoredResponse | None:
        found = self.answers.get((principal, key))
        if found is None:
            return None
        if found[0] != fingerprint:
            raise _reused()
        return StoredResponse(found[1], json.loads(found[2]))

    def remember(self, principal: str, key: str, fingerprint: str, status: int, body: Any) -> None:
        self.answers[(principal, key)] = (fingerprint, status, _stored(body))


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
        raise _reused()
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
        _stored(body),
    )
