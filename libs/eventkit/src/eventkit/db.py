"""Per-service databases: their DSNs, creation, yoyo migrations and asyncpg pools."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

KERNEL_MIGRATIONS: Path = Path(__file__).parent / "migrations"

# The maintenance database every PostgreSQL server has, used to create the others.
_MAINTENANCE_DB = "postgres"


def database_dsn(server_url: str, database: str) -> str:
    """The server URL pointing at `database` instead (query parameters are kept)."""
    parts = urlsplit(server_url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a postgresql:// URL: {server_url!r}")
    return urlunsplit(parts._replace(path="/" + database))


def _maintenance_dsn(server_url: str) -> str:
    # A URL without a database would make the drivers pick the user's name, which need
    # not exist; the URL's own database (if any) is the operator's choice.
    if urlsplit(server_url).path.strip("/"):
        return server_url
    return database_dsn(server_url, _MAINTENANCE_DB)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def ensure_database(server_url: str, database: str) -> bool:
    """Create `database` on the server unless it exists; True when this call created it."""
    conn = await asyncpg.connect(_maintenance_dsn(server_url), timeout=10)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            return False
        try:
            await conn.execute(f"CREATE DATABASE {_quote_ident(database)}")
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            # Another process won the race between our check and our CREATE; the
            # catalog's unique index reports it as a unique violation, not a duplicate.
            return False
        return True
    finally:
        await conn.close()


async def drop_database(server_url: str, database: str) -> None:
    """Drop `database`, disconnecting whoever still uses it."""
    conn = await asyncpg.connect(_maintenance_dsn(server_url), timeout=10)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(database)} WITH (FORCE)")
    finally:
        await conn.close()


def _yoyo_uri(dsn: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def migrate(dsn: str, *dirs: Path) -> list[str]:
    """Apply the kernel migrations, then those in `dirs`; returns the ids newly applied.

    Safe to run from several processes at once: yoyo's lock serialises them, and a
    migration already recorded is skipped.
    """
    import psycopg
    from yoyo import get_backend, read_migrations

    sources = [KERNEL_MIGRATIONS, *(d for d in dirs if Path(d) != KERNEL_MIGRATIONS)]
    migrations = read_migrations(*(str(d) for d in sources))
    # A session advisory lock dies with its process, unlike yoyo's lock row, which a
    # killed migrator leaves behind; holding it also serialises yoyo's own table setup.
    with psycopg.connect(dsn, autocommit=True) as guard:
        guard.execute("SELECT pg_advisory_lock(hashtext('jingmin.migrate'))")
        backend = get_backend(_yoyo_uri(dsn))
        try:
            # Every migrator takes the advisory lock first, so a lock row seen now is stale.
            backend.break_lock()
            with backend.lock(timeout=60):
                pending = backend.to_apply(migrations)
                backend.apply_migrations(pending)
                return [m.id for m in pending]
        finally:
            backend.connection.close()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release: a round trip on every request.

    Safe because the kernel keeps no session state on pooled connections: locks are
    transaction-scoped, open transactions and listeners are still cleared by asyncpg, and the
    one session-level advisory lock (the relay's) is released explicitly before release.
    """


async def create_pool(dsn: str, **kw: Any) -> asyncpg.Pool:
    """A pool sized for one service process; jsonb stays text (the store encodes it)."""
    options: dict[str, Any] = {
        "min_size": 2,
        "max_size": 20,
        "command_timeout": 60,
        "reset": _keep_session,
    }
    options.update(kw)
    pool = await asyncpg.create_pool(dsn, **options)
    assert pool is not None
    return pool
