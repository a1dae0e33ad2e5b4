"""Hash-chained event streams: every event commits to its predecessor, so edits show.

A service opts in by writing through `ChainedEventStore` (or `ChainedTransaction` inside a
consumer's transaction) and declaring `ServiceSpec(hash_chained=True)`; `jingmin
verify-chain` then walks every stream and names the first event that was altered,
inserted or deleted behind the application's back.

Each event's `chain_hash` is HMAC-SHA256 over the canonical JSON of its identity and
content (stream id and type, version, event id, type, schema version, bureau, data,
metadata, occurred_at) and `chain_prev`, the hash of the version before it. The key is
derived from the master key, which the database does not hold: a plain SHA-256 chain could
be recomputed end to end by anyone with write access to the table, a keyed one cannot.
`event_chain_heads` records each stream's last version under the same key, so cutting off
a stream's newest events is caught too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

import asyncpg
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from eventkit.personal import master_key
from eventkit.settings import KernelSettings
from eventkit.store import (
    Change,
    NewEvent,
    PostgresEventStore,
    PostgresTransaction,
    Publisher,
    RecordedEvent,
    _staging,
)

GENESIS = ""  # what version 1 commits to

Problem = Literal["altered", "inserted", "deleted", "truncated", "unsealed"]


@lru_cache(maxsize=8)
def _derive(kek: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"jingmin-event-chain"
    ).derive(kek)


def chain_key(settings: KernelSettings) -> bytes:
    """The chain's MAC key, derived from the master key (rotating that re-keys the chain)."""
    return _derive(master_key(settings))


def _normalise(value: Any) -> Any:
    # jsonb keeps numbers as decimals: 2.0 comes back as 2.0 but 1e20 as an integer. Writing
    # integral floats as integers makes the written and the re-read form hash alike.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def canonical(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8, integral numbers without a fraction."""
    text = json.dumps(_normalise(value), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return text.encode("utf-8")


def _time(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class ChainedRow:
    """What the chain covers of one stored event."""

    stream_id: str
    stream_type: str
    version: int
    event_id: str
    type: str
    schema_version: int
    bureau: str
    data: Mapping[str, Any]
    metadata: Mapping[str, Any]
    occurred_at: datetime
    chain_prev: str | None = None
    chain_hash: str | None = None

    @classmethod
    def of(cls, event: RecordedEvent) -> ChainedRow:
        return cls(
            stream_id=event.stream_id,
            stream_type=event.stream_type,
            version=event.version,
            event_id=event.event_id,
            type=event.type,
            schema_version=event.schema_version,
            bureau=event.bureau,
            data=event.data,
            metadata=event.metadata,
            occurred_at=event.occurred_at,
        )

    def digest(self, key: bytes, prev: str, *, version: int | None = None) -> str:
        """The MAC this event has when it follows `prev` (at `version`, default its own)."""
        body = canonical(
            {
                "stream_id": self.stream_id,
                "stream_type": self.stream_type,
                "version": self.version if version is None else version,
                "event_id": self.event_id,
                "type": self.type,
                "schema_version": self.schema_version,
                "bureau": self.bureau,
                "data": self.data,
                "metadata": self.metadata,
                "occurred_at": _time(self.occurred_at),
                "prev": prev,
            }
        )
        return hmac.new(key, body, hashlib.sha256).hexdigest()


def head_mac(key: bytes, stream_id: str, version: int, chain_hash: str) -> str:
    """Authenticates "version V with this hash is the stream's last" (not just "a version")."""
    body = canonical({"head": stream_id, "version": version, "hash": chain_hash})
    return hmac.new(key, body, hashlib.sha256).hexdigest()


async def seal(conn: asyncpg.Connection, key: bytes, recorded: Sequence[RecordedEvent]) -> None:
    """Chain events just appended to one stream, in the appending transaction.

    The predecessor is committed and immutable here: the append itself holds the next
    version (primary key), so no concurrent writer can slip between it and us.
    """
    if not recorded:
        return
    first = recorded[0]
    if any(e.stream_id != first.stream_id for e in recorded):
        raise ValueError("seal chains one stream's events at a time")
    prev = GENESIS
    if first.version > 1:
        stored = await conn.fetchval(
            "SELECT chain_hash FROM events WHERE stream_id = $1 AND version = $2",
            first.stream_id,
            first.version - 1,
        )
        prev = stored or GENESIS  # an unsealed predecessor is reported by verify
    ids, prevs, digests = [], [], []
    for event in recorded:
        digest = ChainedRow.of(event).digest(key, prev)
        ids.append(event.event_id)
        prevs.append(prev)
        digests.append(digest)
        prev = digest
    last = recorded[-1]
    await conn.execute(
        """WITH sealed AS (
               UPDATE events e SET chain_prev = s.prev, chain_hash = s.hash
               FROM unnest($1::uuid[], $2::text[], $3::text[]) AS s(event_id, prev, hash)
               WHERE e.event_id = s.event_id)
           INSERT INTO event_chain_heads (stream_id, version, chain_hash, head_mac)
           VALUES ($4, $5, $6, $7)
           ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version,
               chain_hash = excluded.chain_hash, head_mac = excluded.head_mac,
               updated_at = clock_timestamp()""",
        ids,
        prevs,
        digests,
        last.stream_id,
        last.version,
        prev,
        head_mac(key, last.stream_id, last.version, prev),
    )


class ChainedTransaction(PostgresTransaction):
    """A store transaction whose appends are sealed into their stream's chain."""

    def __init__(self, conn: asyncpg.Connection, key: bytes) -> None:
        super().__init__(conn)
        self._key = key

    async def append(
        self,
        stream_id: str,
        stream_type: str,
        expected_version: int,
        events: Sequence[NewEvent],
        publish: Publisher | None = None,
        changes: Sequence[Change] = (),
    ) -> list[RecordedEvent]:
        recorded = await super().append(
            stream_id, stream_type, expected_version, events, publish, changes
        )
        await seal(self.connection, self._key, recorded)
        return recorded


class ChainedEventStore(PostgresEventStore):
    """PostgresEventStore whose every append is hash-chained."""

    def __init__(self, pool: asyncpg.Pool, key: bytes) -> None:
        super().__init__(pool)
        self.key = key

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[ChainedTransaction]:
        with _staging():
            async with self.pool.acquire() as conn, conn.transaction():
                yield ChainedTransaction(conn, self.key)

    def session(self) -> Any:
        """Always a transaction: sealing the chain is a second statement after the append."""
        return self.transaction()


# ---- verification --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainFinding:
    """The first thing wrong with one stream."""

    stream_id: str
    problem: Problem
    version: int | None
    event_id: str | None
    detail: str

    def __str__(self) -> str:
        where = f"stream {self.stream_id}"
        if self.version is not None:
            where += f" version {self.version}"
        if self.event_id:
            where += f" (event {self.event_id})"
        return f"{where}: {self.problem}: {self.detail}"


@dataclass
class ChainReport:
    streams: int = 0
    events: int = 0
    findings: list[ChainFinding] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class _Head:
    version: int
    chain_hash: str
    head_mac: str


def _finding(
    stream_id: str,
    problem: Problem,
    row: ChainedRow | None,
    detail: str,
    version: int | None = None,
) -> ChainFinding:
    at = version if version is not None else (row.version if row else None)
    return ChainFinding(stream_id, problem, at, row.event_id if row else None, detail)


def _check_stream(
    key: bytes, stream_id: str, rows: Sequence[ChainedRow], head: _Head | None
) -> ChainFinding | None:
    """The first altered, inserted or deleted event of one stream, or None."""
    if head is not None and head.head_mac != head_mac(
        key, stream_id, head.version, head.chain_hash
    ):
        return _finding(
            stream_id, "altered", None, "the stream's recorded head does not authenticate"
        )
    prev = GENESIS
    for i, row in enumerate(rows):
        expected = i + 1
        if row.version != expected:
            missing = (
                f"version {expected}"
                if row.version == expected + 1
                else f"versions {expected}-{row.version - 1}"
            )
            detail = f"{missing} missing before version {row.version}"
            return _finding(stream_id, "deleted", None, detail, expected)
        if row.chain_hash is None:
            kind: Problem = "inserted" if head is None or row.version > head.version else "unsealed"
            detail = "carries no chain hash: not written by the application"
            return _finding(stream_id, kind, row, detail)
        if row.digest(key, row.chain_prev or GENESIS) != row.chain_hash:
            return _classify_forgery(key, stream_id, rows, i, prev, head)
        if (row.chain_prev or GENESIS) != prev:
            detail = "authentic, but chained to a predecessor that is no longer there"
            return _finding(stream_id, "deleted", row, detail)
        prev = row.chain_hash
    if head is None:
        if rows:
            detail = "the stream has no recorded head: not sealed by the application"
            return _finding(stream_id, "inserted", rows[0], detail)
        return None
    last = rows[-1].version if rows else 0
    if last < head.version:
        gone = (
            f"version {head.version}"
            if last + 1 == head.version
            else f"versions {last + 1}-{head.version}"
        )
        return _finding(stream_id, "truncated", None, f"{gone} deleted from the end", last + 1)
    if rows and rows[-1].chain_hash != head.chain_hash:
        detail = "the last event is not the one recorded as the stream's head"
        return _finding(stream_id, "altered", rows[-1], detail)
    return None


def _classify_forgery(
    key: bytes,
    stream_id: str,
    rows: Sequence[ChainedRow],
    i: int,
    prev: str,
    head: _Head | None,
) -> ChainFinding:
    """Row i does not authenticate: say whether it was altered, slipped in, or moved down."""
    row = rows[i]
    after = rows[i + 1] if i + 1 < len(rows) else None
    if (
        after is not None
        and after.chain_hash is not None
        and after.chain_prev == prev
        and after.digest(key, prev, version=after.version - 1) == after.chain_hash
    ):
        # The next event is authentic one version lower and follows our predecessor:
        # this row was put in front of it and the rest renumbered.
        detail = "does not authenticate, and the events after it were renumbered"
        return _finding(stream_id, "inserted", row, detail)
    if row.digest(key, row.chain_prev or GENESIS, version=row.version + 1) == row.chain_hash:
        detail = f"the event before {row.event_id} was deleted and later versions renumbered"
        return _finding(stream_id, "deleted", None, detail, row.version)
    if head is not None and row.version > head.version:
        detail = "lies past the stream's recorded head and does not authenticate"
        return _finding(stream_id, "inserted", row, detail)
    return _finding(stream_id, "altered", row, "its content no longer matches its chain hash")


_ROWS = """SELECT stream_id, stream_type, version, event_id::text AS event_id, type,
                  schema_version, bureau, data::text AS data, metadata::text AS metadata,
                  occurred_at, chain_prev, chain_hash
           FROM events WHERE ($1::text IS NULL OR stream_id = $1)
           ORDER BY stream_id, version"""


def _row(r: asyncpg.Record) -> ChainedRow:
    return ChainedRow(
        stream_id=r["stream_id"],
        stream_type=r["stream_type"],
        version=r["version"],
        event_id=r["event_id"],
        type=r["type"],
        schema_version=r["schema_version"],
        bureau=r["bureau"],
        data=json.loads(r["data"]),
        metadata=json.loads(r["metadata"]),
        occurred_at=r["occurred_at"],
        chain_prev=r["chain_prev"],
        chain_hash=r["chain_hash"],
    )


async def verify(
    conn: asyncpg.Connection, key: bytes, *, stream_id: str | None = None
) -> ChainReport:
    """Check every stream (or one) in one consistent snapshot; the first finding per stream."""
    report = ChainReport()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        heads = {
            r["stream_id"]: _Head(r["version"], r["chain_hash"], r["head_mac"])
            for r in await conn.fetch(
                """SELECT stream_id, version, chain_hash, head_mac FROM event_chain_heads
                   WHERE $1::text IS NULL OR stream_id = $1""",
                stream_id,
            )
        }
        seen: set[str] = set()
        current: str | None = None
        rows: list[ChainedRow] = []

        def close_stream() -> None:
            if current is None:
                return
            seen.add(current)
            report.streams += 1
            found = _check_stream(key, current, rows, heads.get(current))
            if found is not None:
                report.findings.append(found)

        async for record in conn.cursor(_ROWS, stream_id, prefetch=1000):
            row = _row(record)
            report.events += 1
            if row.stream_id != current:
                close_stream()
                current, rows = row.stream_id, []
            rows.append(row)
        close_stream()
        for gone in sorted(set(heads) - seen):
            report.streams += 1
            found = _check_stream(key, gone, [], heads[gone])
            if found is not None:
                report.findings.append(found)
    return report


async def verify_services(
    specs: Iterable[Any], settings: KernelSettings, echo: Callable[[str], None] = print
) -> int:
    """`jingmin verify-chain`: check each hash-chained service; 0 when every chain is intact."""
    from eventkit.settings import service_dsn

    key = chain_key(settings)
    failed = False
    for spec in specs:
        if not getattr(spec, "hash_chained", False):
            echo(f"{spec.name}: not hash-chained, skipped")
            continue
        try:
            conn = await asyncpg.connect(service_dsn(settings, spec.database), timeout=10)
        except asyncpg.InvalidCatalogNameError:
            echo(f"{spec.name}: no database {spec.database}, nothing to verify")
            continue
        try:
            report = await verify(conn, key)
        finally:
            await conn.close()
        for item in report.findings:
            echo(f"{spec.name}: {item}")
        if report.intact:
            echo(f"{spec.name}: {report.streams} streams, {report.events} events: chain intact")
        else:
            failed = True
            echo(
                f"{spec.name}: {len(report.findings)} of {report.streams} streams fail "
                f"verification ({report.events} events read)"
            )
    return 1 if failed else 0
