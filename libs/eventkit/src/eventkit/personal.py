"""Per-person data keys for personal fields: erasing a key erases that person everywhere."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
import unicodedata
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeAlias, TypeGuard

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from eventkit.settings import KernelSettings
from eventkit.store import Change, stage

# Nothing in this module logs: values, keys and blobs never reach a logger or an exception
# message, so a stack trace cannot leak a name or an ID number.

# A connection (usually inside the caller's transaction); None means "use the vault's pool".
Conn: TypeAlias = "asyncpg.Connection | None"
ConnOrPool: TypeAlias = "asyncpg.Connection | asyncpg.Pool | None"

ERASED = "[erased]"
BLOB_TAG = "aesgcm1"
# The only identifier names subject_ref reads; anything else is a caller's typo.
ID_NUMBER = "id_number"
PHONE = "phone"

_NONCE = 12
# Shorter numbers (110, 12345, extensions) are shared by many people: linking on them would
# merge strangers under one key, and erasing one would erase the others.
_MIN_PHONE_DIGITS = 7


class SubjectErased(Exception):
    """The person asked to be forgotten: no new personal data may be stored under them."""

    def __init__(self, subject_id: str) -> None:
        super().__init__(f"subject {subject_id} has been erased")
        self.subject_id = subject_id


class PersonalDataError(ValueError):
    """A blob is malformed or does not authenticate under its subject's key."""


# --- key material -------------------------------------------------------------------------


def read_or_create_secret_file(path: Path, make: Callable[[], bytes]) -> bytes:
    """Read a 0600 secret file, creating it once; concurrent first users all read one winner."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(make())
            f.flush()
            os.fsync(f.fileno())
        # link() never replaces an existing file, and the file appears complete or not at
        # all, so a racing process either wins or reads the winner's key, never half of one.
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


@lru_cache(maxsize=8)
def _master_key(configured: str | None, home: Path) -> bytes:
    if configured:
        raw = configured
    else:
        stored = read_or_create_secret_file(
            home.resolve() / "master.key", lambda: base64.b64encode(os.urandom(32)) + b"\n"
        )
        raw = stored.decode("ascii")
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ValueError("the master key must be base64 of exactly 32 bytes")
    return key


def master_key(settings: KernelSettings) -> bytes:
    """The key-encryption key: MASTER_KEY, or a dev key kept in JINGMIN_HOME/master.key."""
    # The cache key is the path as given: resolving it on every call cost measurable CPU on
    # the write path (subject_ref runs per request). Relative paths resolve inside.
    return _master_key(settings.master_key, Path(settings.jingmin_home))


@lru_cache(maxsize=8)
def _pepper(kek: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"jingmin-subject-ref"
    ).derive(kek)


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()[:26]


def _strong_identifier(identifiers: Mapping[str, str | None]) -> bytes | None:
    unknown = set(identifiers) - {ID_NUMBER, PHONE}
    if unknown:
        raise ValueError(
            f"subject_ref reads only {ID_NUMBER!r} and {PHONE!r}, not {sorted(unknown)}"
        )
    # NFKC folds full-width digits and letters (common in Chinese input) to ASCII.
    id_number = unicodedata.normalize("NFKC", identifiers.get(ID_NUMBER) or "")
    id_number = "".join(id_number.split()).upper()
    if id_number:
        return b"id:" + id_number.encode()
    phone = unicodedata.normalize("NFKC", identifiers.get(PHONE) or "")
    digits = "".join(c for c in phone if "0" <= c <= "9")[-11:]
    if len(digits) >= _MIN_PHONE_DIGITS:
        return b"phone:" + digits.encode()
    return None


def subject_ref(identifiers: Mapping[str, str | None], settings: KernelSettings) -> str:
    """The stable reference for a person, the same in every service.

    Keyed HMAC over the ID number (upper-cased), else the phone's last 11 digits. This is
    pseudonymous, not anonymous: whoever holds the master key can test a guessed ID number
    against a reference, so references are still personal data. Without a strong
    identifier the person gets a fresh random reference that links to nothing.
    """
    ident = _strong_identifier(identifiers)
    if ident is None:
        return "sub_" + _b32(os.urandom(16))
    digest = hmac.new(_pepper(master_key(settings)), ident, hashlib.sha256).digest()
    return "sub_" + _b32(digest)


# --- blobs --------------------------------------------------------------------------------


def is_personal_blob(value: Any) -> TypeGuard[Mapping[str, str]]:
    return (
        isinstance(value, Mapping)
        and value.get("enc") == BLOB_TAG
        and all(isinstance(value.get(k), str) for k in ("sub", "n", "ct"))
    )


def _seal(key: bytes, aad: bytes, plaintext: bytes) -> tuple[bytes, bytes]:
    nonce = os.urandom(_NONCE)
    return nonce, AESGCM(key).encrypt(nonce, plaintext, aad)


def _wrap(kek: bytes, subject_id: str, data_key: bytes) -> bytes:
    nonce, ct = _seal(kek, subject_id.encode(), data_key)
    return nonce + ct


def _unwrap(kek: bytes, subject_id: str, wrapped: bytes) -> bytes:
    try:
        return AESGCM(kek).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], subject_id.encode())
    except InvalidTag:
        raise PersonalDataError(
            f"the data key of {subject_id} does not open under this master key"
        ) from None


# --- key storage --------------------------------------------------------------------------


class _PostgresKeys:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def _connection(self, conn: Any) -> AsyncIterator[Any]:
        if conn is None or isinstance(conn, asyncpg.Pool):
            async with (conn or self.pool).acquire() as acquired:
                yield acquired
        else:
            yield conn

    async def fetch(self, conn: Any, subject_id: str) -> bytes | None:
        wrapped: bytes | None = await (conn or self.pool).fetchval(
            "SELECT wrapped_key FROM subject_keys WHERE subject_id = $1", subject_id
        )
        return wrapped

    async def is_erased(self, conn: Any, subject_id: str) -> bool:
        found = await (conn or self.pool).fetchval(
            "SELECT true FROM subject_erasures WHERE subject_id = $1", subject_id
        )
        return bool(found)

    async def for_write(self, conn: Any, subject_id: str, candidate: bytes) -> bytes:
        """The stored wrapped key, created from `candidate` if absent (one round trip)."""
        async with self._connection(conn) as c:
            stored: bytes | None = await c.fetchval(
                "SELECT subject_key_for_write($1, $2)", subject_id, candidate
            )
        if stored is None:
            raise SubjectErased(subject_id)
        return stored

    async def erase(self, conn: Any, subject_id: str, by: str, reason: str | None) -> bool:
        async with self._connection(conn) as c, c.transaction():
            await c.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7406))", subject_id)
            deleted = await c.fetchval(
                "DELETE FROM subject_keys WHERE subject_id = $1 RETURNING true", subject_id
            )
            recorded = await c.fetchval(
                """INSERT INTO subject_erasures (subject_id, erased_by, reason)
                   VALUES ($1, $2, $3) ON CONFLICT (subject_id) DO NOTHING RETURNING true""",
                subject_id,
                by,
                reason,
            )
            return bool(deleted or recorded)


class _MemoryKeys:
    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}
        self.erasures: dict[str, tuple[str, str | None]] = {}

    async def fetch(self, conn: Any, subject_id: str) -> bytes | None:
        return self.keys.get(subject_id)

    async def is_erased(self, conn: Any, subject_id: str) -> bool:
        return subject_id in self.erasures

    async def for_write(self, conn: Any, subject_id: str, candidate: bytes) -> bytes:
        if subject_id in self.erasures:
            raise SubjectErased(subject_id)
        return self.keys.setdefault(subject_id, candidate)

    async def erase(self, conn: Any, subject_id: str, by: str, reason: str | None) -> bool:
        deleted = self.keys.pop(subject_id, None) is not None
        recorded = subject_id not in self.erasures
        self.erasures.setdefault(subject_id, (by, reason))
        return deleted or recorded


# --- the vault ----------------------------------------------------------------------------


@dataclass
class _Cached:
    wrapped: bytes
    key: bytes
    loaded_at: float


class Vault:
    """Encrypts and decrypts personal fields; `pool=None` keeps keys in memory for tests.

    Methods take the caller's connection so a new person's key commits or rolls back with
    the events that use it, inside a transaction. `encrypt_fields_staged` goes further: the
    key is claimed by the statement that appends the events, so both commit or neither
    does, even with no explicit transaction, and without a round trip of its own.

    Unwrapped keys are cached for `cache_ttl` seconds: an erasure made by another process
    (e.g. `jingmin erase`) is honoured here within that time.
    """

    def __init__(
        self,
        pool: asyncpg.Pool | None,
        settings: KernelSettings,
        *,
        cache_size: int = 1024,
        cache_ttl: float = 30.0,
    ) -> None:
        self._kek = master_key(settings)
        self._keys: _PostgresKeys | _MemoryKeys = (
            _MemoryKeys() if pool is None else _PostgresKeys(pool)
        )
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._ask_store: OrderedDict[str, None] = OrderedDict()
        self._cache_size = cache_size
        self._cache_ttl = cache_ttl

    def _cached(self, subject_id: str) -> _Cached | None:
        entry = self._cache.get(subject_id)
        if entry is None:
            return None
        if time.monotonic() - entry.loaded_at > self._cache_ttl:
            del self._cache[subject_id]
            return None
        self._cache.move_to_end(subject_id)
        return entry

    def _remember(self, subject_id: str, wrapped: bytes) -> bytes:
        entry = self._cache.get(subject_id)
        if entry is not None and entry.wrapped == wrapped:
            key = entry.key
        else:
            key = _unwrap(self._kek, subject_id, wrapped)
        self._cache[subject_id] = _Cached(wrapped, key, time.monotonic())
        self._cache.move_to_end(subject_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return key

    def forget(self, subject_id: str) -> None:
        """Drop a cached key, e.g. when told another process erased this subject."""
        self._cache.pop(subject_id, None)

    async def _key_for_write(self, conn: Any, subject_id: str) -> bytes:
        # Always asks the store, never only the cache: a key cached from a transaction that
        # later rolled back exists nowhere else, and data written under it would be lost.
        # A fresh candidate costs microseconds; asking first whether one is needed would cost
        # a round trip on every write.
        candidate = _wrap(self._kek, subject_id, AESGCM.generate_key(256))
        wrapped = await self._keys.for_write(conn, subject_id, candidate)
        return self._remember(subject_id, wrapped)

    async def _key_for_read(self, conn: Any, subject_id: str, *, fresh: bool) -> bytes | None:
        entry = None if fresh else self._cached(subject_id)
        if entry is not None:
            return entry.key
        wrapped = await self._keys.fetch(conn, subject_id)
        if wrapped is None:
            self.forget(subject_id)
            return None
        return self._remember(subject_id, wrapped)

    @staticmethod
    def _encrypt_with(key: bytes, subject_id: str, value: str) -> dict[str, str]:
        if not isinstance(value, str):
            raise TypeError("personal values must be str")
        nonce, ct = _seal(key, subject_id.encode(), value.encode("utf-8"))
        return {
            "enc": BLOB_TAG,
            "sub": subject_id,
            "n": base64.b64encode(nonce).decode(),
            "ct": base64.b64encode(ct).decode(),
        }

    async def encrypt(self, conn: Conn, subject_id: str, value: str) -> dict[str, str]:
        """Encrypt one value, creating the person's key if needed; SubjectErased if erased."""
        key = await self._key_for_write(conn, subject_id)
        return self._encrypt_with(key, subject_id, value)

    async def encrypt_fields(
        self, conn: Conn, subject_id: str, fields: Mapping[str, str | None]
    ) -> dict[str, dict[str, str] | None]:
        """Encrypt each non-None field for a person; None stays None."""
        key = await self._key_for_write(conn, subject_id)
        return {
            name: None if value is None else self._encrypt_with(key, subject_id, value)
            for name, value in fields.items()
        }

    async def encrypt_fields_staged(
        self, conn: Conn, subject_id: str, fields: Mapping[str, str | None]
    ) -> dict[str, dict[str, str] | None]:
        """Like `encrypt_fields`, for fields the current unit of work will append.

        The key used (the cached one, or a fresh candidate for a person not seen here) is
        claimed by the append's own statement instead of asked for first. If the store
        holds another key, or the person was erased, the append fails, the command is
        retried, and this person's key is then asked for the usual way (which raises
        SubjectErased for an erased person).
        """
        if not isinstance(self._keys, _PostgresKeys) or subject_id in self._ask_store:
            self._ask_store.pop(subject_id, None)
            return await self.encrypt_fields(conn, subject_id, fields)
        entry = self._cached(subject_id)
        if entry is not None:
            key, wrapped = entry.key, entry.wrapped
        else:
            key = AESGCM.generate_key(256)
            wrapped = _wrap(self._kek, subject_id, key)
        claim = Change(
            ("SELECT subject_key_claim($1, $2)",),
            (subject_id, wrapped),
            check=True,
            on_failure=lambda: self._contested(subject_id),
        )
        if not stage(claim):
            return await self.encrypt_fields(conn, subject_id, fields)
        return {
            name: None if value is None else self._encrypt_with(key, subject_id, value)
            for name, value in fields.items()
        }

    def _contested(self, subject_id: str) -> None:
        """A claim for this person failed: their key is asked for next time."""
        self.forget(subject_id)
        self._ask_store[subject_id] = None
        while len(self._ask_store) > self._cache_size:
            self._ask_store.popitem(last=False)

    async def decrypt(self, conn_or_pool: ConnOrPool, blob: Mapping[str, Any]) -> str | None:
        """The plaintext, or None when the person's key was erased."""
        if not is_personal_blob(blob):
            raise PersonalDataError("not a personal-data blob")
        subject_id = blob["sub"]
        try:
            nonce = base64.b64decode(blob["n"], validate=True)
            ct = base64.b64decode(blob["ct"], validate=True)
        except ValueError:
            raise PersonalDataError(f"malformed blob for {subject_id}") from None
        for fresh in (False, True):
            key = await self._key_for_read(conn_or_pool, subject_id, fresh=fresh)
            if key is None:
                return None
            try:
                return AESGCM(key).decrypt(nonce, ct, subject_id.encode()).decode("utf-8")
            except InvalidTag:
                # A stale cached key (e.g. from a rolled-back first write) gets one reload.
                self.forget(subject_id)
        raise PersonalDataError(f"blob for {subject_id} does not authenticate")

    async def decrypt_fields(
        self, conn_or_pool: ConnOrPool, blobs: Mapping[str, Mapping[str, Any] | None]
    ) -> dict[str, str | None]:
        """Decrypt each blob; None stays None, and an erased person's fields become None."""
        return {
            name: None if blob is None else await self.decrypt(conn_or_pool, blob)
            for name, blob in blobs.items()
        }

    async def reveal(self, conn_or_pool: ConnOrPool, blob: Mapping[str, Any] | None) -> str | None:
        """Like decrypt, but an erased value shows as ERASED; an absent one stays None."""
        if blob is None:
            return None
        value = await self.decrypt(conn_or_pool, blob)
        return ERASED if value is None else value

    async def reveal_fields(
        self, conn_or_pool: ConnOrPool, blobs: Mapping[str, Mapping[str, Any] | None]
    ) -> dict[str, str | None]:
        return {name: await self.reveal(conn_or_pool, blob) for name, blob in blobs.items()}

    async def reveal_all(self, conn_or_pool: ConnOrPool, value: Any) -> Any:
        """`value` with every personal blob inside it (at any depth) revealed."""
        if is_personal_blob(value):
            return await self.reveal(conn_or_pool, value)
        if isinstance(value, Mapping):
            return {k: await self.reveal_all(conn_or_pool, v) for k, v in value.items()}
        return value

    async def is_erased(self, conn_or_pool: ConnOrPool, subject_id: str) -> bool:
        return await self._keys.is_erased(conn_or_pool, subject_id)

    async def erase(self, conn: Conn, subject_id: str, by: str, reason: str | None = None) -> bool:
        """Shred a person's key and record the erasure; True only the first time."""
        self.forget(subject_id)
        try:
            return await self._keys.erase(conn, subject_id, by, reason)
        finally:
            # A decrypt racing the erase may have re-cached the key meanwhile.
            self.forget(subject_id)
