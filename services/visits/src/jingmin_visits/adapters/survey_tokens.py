"""Survey links: signed, single-use, expiring, and meaningless to anyone who reads them.

A link is `<random id>.<HMAC of the id>`: the signature turns away forged or mangled links
without a database read; the row makes the link single-use and gives it an expiry. The
link carries no case, callback or person: only the row knows which callback it answers.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eventkit.personal import master_key
from eventkit.settings import KernelSettings

_SIGNATURE_CHARS = 22  # 132 bits of HMAC-SHA256 survive in the link


def signing_key(settings: KernelSettings) -> bytes:
    """Derived from the master key, so there is no second secret to deploy and rotate."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"jingmin/visits/survey")
    return hkdf.derive(master_key(settings))


def _signature(key: bytes, token_id: str) -> str:
    digest = hmac.new(key, token_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:_SIGNATURE_CHARS]


def sign(key: bytes, token_id: str) -> str:
    return f"{token_id}.{_signature(key, token_id)}"


def verified_id(key: bytes, token: str) -> str | None:
    """The token's id if its signature holds, else None (compared in constant time)."""
    token_id, dot, signature = token.partition(".")
    if not dot or not token_id or len(token_id) > 64:
        return None
    return token_id if hmac.compare_digest(signature, _signature(key, token_id)) else None


async def mint(conn: asyncpg.Connection, key: bytes, callback_id: str, expires_at: datetime) -> str:
    token_id = secrets.token_urlsafe(16)
    await conn.execute(
        "INSERT INTO survey_tokens (token_id, callback_id, expires_at) VALUES ($1, $2, $3)",
        token_id,
        callback_id,
        expires_at,
    )
    return sign(key, token_id)


async def mint_for_unit(
    conn: asyncpg.Connection, key: bytes, wave_id: str, unit_id: str, expires_at: datetime
) -> str:
    """A link for one sampled unit of a survey wave (the wave questionnaire)."""
    token_id = secrets.token_urlsafe(16)
    await conn.execute(
        """INSERT INTO survey_tokens (token_id, wave_id, unit_id, expires_at)
           VALUES ($1, $2, $3, $4)""",
        token_id,
        wave_id,
        unit_id,
        expires_at,
    )
    return sign(key, token_id)


class State(enum.Enum):
    VALID = "valid"
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Lookup:
    state: State
    callback_id: str | None = None
    wave_id: str | None = None
    unit_id: str | None = None


async def look_up(conn: asyncpg.Connection, token_id: str, *, consume: bool = False) -> Lookup:
    """Where a link stands; with `consume`, a valid link is used up in `conn`'s transaction.

    The row is locked, so two submissions of one link race for it and only one wins.
    """
    row = await conn.fetchrow(
        f"""SELECT callback_id, wave_id, unit_id, used_at,
                   expires_at <= clock_timestamp() AS expired
            FROM survey_tokens WHERE token_id = $1 {"FOR UPDATE" if consume else ""}""",
        token_id,
    )
    if row is None:
        return Lookup(State.UNKNOWN)
    target = (row["callback_id"], row["wave_id"], row["unit_id"])
    if row["used_at"] is not None:
        return Lookup(State.USED, *target)
    if row["expired"]:
        return Lookup(State.EXPIRED, *target)
    if consume:
        await conn.execute(
            "UPDATE survey_tokens SET used_at = clock_timestamp() WHERE token_id = $1", token_id
        )
    return Lookup(State.VALID, *target)
