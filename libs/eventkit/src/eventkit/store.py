"""Event store: append with optimistic concurrency, load a stream, read all without skipping."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

import asyncpg

from eventkit import idempotency
from eventkit.idempotency import InMemoryKeys, StoredResponse


class ConcurrencyConflict(Exception):
    """The stream moved on since the caller read it: reload and decide again."""

    def __init__(self, stream_id: str, expected: int, actual: int | None = None) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r}: expected version {expected}, found {actual}"
            if actual is not None
            else f"stream {stream_id!r}: version {expected} is stale"
        )


class StaleTransaction(ConcurrencyConflict):
    """This transaction is older than the stream's last write: retry in a new one.

    Not the caller's conflict (the expected version was right), so handlers retry it even
    when the client pinned a version.
    """


@dataclass(frozen=True)
class NewEvent:
    """An event about to be appended. `type` is the stable stored name, never a module path."""

    type: str
    data: Mapping[str, Any]
    occurred_at: datetime
    bureau: str
    schema_version: int = 1
    metadata: Mapping[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class RecordedEvent:
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
    recorded_at: datetime
    position: Position


@dataclass(frozen=True, order=True)
class Position:
    """Where a reader of all events stands: (transaction id, global position)."""

    tx_id: int = 0
    global_position: int = 0


START = Position()


@dataclass(frozen=True)
class OutboxMessage:
    """A row for the relay: published to `topic` under `key` with these headers and body."""

    event_id: str
    aggregate_type: str
    aggregate_id: str
    type: str
    topic: str
    payload: Mapping[str, Any]
    headers: Mapping[str, str]


_PARAM = re.compile(r"\$(\d+)")


@lru_cache(maxsize=256)
def _shifted(ctes: tuple[str, ...], offset: int) -> tuple[str, ...]:
    # A service has a handful of statements: renumbering each once per process is enough.
    return tuple(_PARAM.sub(lambda m: f"${int(m.group(1)) + offset}", c) for c in ctes)


@dataclass(frozen=True)
class Change:
    """A read-model write as data-modifying CTE bodies with their parameters ($1..$n).

    Given to `append`, it is written by the same statement as the events, so events, outbox
    and read model commit together even outside an explicit transaction, in one round trip.
    """

    ctes: Sequence[str]
    args: Sequence[Any]
    # A check (one SELECT) must hold for the statement to commit; it runs because the
    # statement's result reads it. `on_failure` hears when the check refused.
    check: bool = False
    on_failure: Callable[[], None] | None = field(default=None, compare=False)

    def shifted(self, offset: int) -> tuple[str, ...]:
        """The CTE bodies with every $n renumbered to $(n + offset)."""
        return _shifted(tuple(self.ctes), offset)

    def statement(self) -> str:
        """The change on its own: every CTE runs once even when nothing reads it."""
        ctes = ", ".join(f"c{i} AS ({c})" for i, c in enumerate(self.ctes))
        names = ", ".join(f"c{i}" for i in range(len(self.ctes)))
        return f"WITH {ctes} SELECT 1" + (f" FROM {names}" if self.check else "")


class KeyClaimRefused(StaleTransaction):
    """A check riding on an append refused (e.g. a person's data key was not the one used).

    Always ours to retry: the change's `on_failure` has told its author to ask again.
    """


_CHECK_FAILED = "JM001"  # SQLSTATE the kernel's checks raise (0006_subject_key_claim.sql)
_STAGED: ContextVar[list[Change] | None] = ContextVar("eventkit_staged_changes", default=None)


def stage(change: Change) -> bool:
    """Have the current unit of work's next append write `change` too; False if none is open.

    For the kernel's own rows that must commit with the events (a person's data key).
    """
    staged = _STAGED.get()
    if staged is None:
        return False
    staged.append(change)
    return True


@contextmanager
def _staging() -> Iterator[None]:
    token = _STAGED.set([])
    try:
        yield
    finally:
        _STAGED.reset(token)


def _take_staged() -> list[Change]:
    staged = _STAGED.get()
    if not staged:
        return []
    taken = list(staged)
    staged.clear()
    return taken


# Maps a recorded event to the outbox rows it publishes. Given to `append`, the rows are
# written by the same statement as the events.
Publisher = Callable[["RecordedEvent"], Sequence["OutboxMessage"]]


class Transaction(Protocol):
    """One atomic write: events, outbox rows and the caller's own rows commit together."""

    @property
    def connection(self) -> asyncpg.Connection | None: ...

    async def append(
        self,
        stream_id: str,
        stream_type: str,
        expected_version: int,
        events: Sequence[NewEvent],
        publish: Publisher | None = None,
        changes: Sequence[Change] = (),
    ) -> list[RecordedEvent]: ...

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> None: ...

    async def apply(self, change: Change) -> None: ...

    async def load(self, stream_id: str) -> list[RecordedEvent]: ...

    async def claim(self, principal: str, key: str, fingerprint: str) -> StoredResponse | None: ...

    async def remember(
        self, principal: str, key: str, fingerprint: str, status: int, body: Any
    ) -> None: ...


class EventStore(Protocol):
    def transaction(self) -> Any: ...

    def session(self) -> Any: ...

    async def append(
        self,
        stream_id: str,
        stream_type: str,
        expected_version: int,
        events: Sequence[NewEvent],
        outbox: Sequence[OutboxMessage] = (),
    ) -> list[RecordedEvent]: ...

    async def load(self, stream_id: str) -> list[RecordedEvent]: ...

    async def read_all(
        self, after: Position = START, limit: int = 1000, stream_type: str | None = None
    ) -> list[RecordedEvent]: ...


def _dumps(value: Any) -> str:
    # Sorted keys: the relay (from what a command built) and replay (from jsonb, which
    # reorders keys) must produce the same bytes for the same event.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)


def _record(row: asyncpg.Record) -> RecordedEvent:
    return RecordedEvent(
        stream_id=row["stream_id"],
        stream_type=row["stream_type"],
        version=row["version"],
        event_id=str(row["event_id"]),
        type=row["type"],
        schema_version=row["schema_version"],
        bureau=row["bureau"],
        data=json.loads(row["data"]),
        metadata=json.loads(row["metadata"]),
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
        position=Position(int(row["tx_id"]), row["global_position"]),
    )


def _outbox_columns(messages: Sequence[OutboxMessage]) -> list[list[str]]:
    """Outbox rows as column arrays, for one `unnest` insert (ids follow row order)."""
    return [
        [m.event_id for m in messages],
        [m.aggregate_type for m in messages],
        [m.aggregate_id for m in messages],
        [m.type for m in messages],
        [m.topic for m in messages],
        [_dumps(dict(m.payload)) for m in messages],
        [_dumps(dict(m.headers)) for m in messages],
    ]


def _recorded(
    stream_id: str,
    stream_type: str,
    version: int,
    event: NewEvent,
    data: str,
    metadata: str,
    row: asyncpg.Record | None,
) -> RecordedEvent:
    """A recorded event from what was sent, plus what the database assigned (if known)."""
    return RecordedEvent(
        stream_id=stream_id,
        stream_type=stream_type,
        version=version,
        event_id=event.event_id,
        type=event.type,
        schema_version=event.schema_version,
        bureau=event.bureau,
        data=json.loads(data),
        metadata=json.loads(metadata),
        occurred_at=event.occurred_at,
        recorded_at=row["recorded_at"] if row else event.occurred_at,
        position=Position(row["tx_id"], row["global_position"]) if row else START,
    )


_COLUMNS = (
    "global_position, stream_id, stream_type, version, event_id, type, schema_version, "
    "bureau, data::text AS data, metadata::text AS metadata, occurred_at, recorded_at, "
    "tx_id::text::bigint AS tx_id"
)


_APPEND_PARAMS = 17  # parameters of the append statement; a Change's follow them


class PostgresTransaction:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @property
    def connection(self) -> asyncpg.Connection:
        return self._conn

    async def append(
        self,
        stream_id: str,
        stream_type: str,
        expected_version: int,
        events: Sequence[NewEvent],
        publish: Publisher | None = None,
        changes: Sequence[Change] = (),
    ) -> list[RecordedEvent]:
        if not events:
            for change in changes:
                await self.apply(change)
            return []
        # A new stream needs no look-up: the primary key refuses a second version 1.
        last = None
        if expected_version > 0:
            last = await self._conn.fetchrow(
                """SELECT version, tx_id > pg_current_xact_id() AS written_later FROM events
                   WHERE stream_id = $1 ORDER BY version DESC LIMIT 1""",
                stream_id,
            )
            current = last["version"] if last is not None else 0
            if current != expected_version:
                raise ConcurrencyConflict(stream_id, expected_version, current)
        if last is not None and last["written_later"]:
            # read_all orders by transaction id, which a transaction gets at its first write:
            # this one started writing before the stream's last version was written, so our
            # event would be read before it. A retry runs in a new (younger) transaction.
            raise StaleTransaction(stream_id, expected_version, current)
        data = [_dumps(dict(e.data)) for e in events]
        meta = [_dumps(dict(e.metadata)) for e in events]
        versions = [expected_version + i + 1 for i in range(len(events))]
        # What the database decides (position, recorded time) is not part of any envelope,
        # so the outbox rows can be built first and written by the same statement.
        provisional = [
            _recorded(stream_id, stream_type, v, e, d, m, None)
            for v, e, d, m in zip(versions, events, data, meta, strict=True)
        ]
        messages = [m for r in provisional for m in publish(r)] if publish else []
        changes = [*_take_staged(), *changes]
        extra: list[str] = []
        extra_args: list[Any] = []
        checks: list[str] = []
        for change in changes:
            if change.check:
                checks += [f"r{len(extra) + i}" for i in range(len(change.ctes))]
            extra += change.shifted(_APPEND_PARAMS + len(extra_args))
            extra_args += change.args
        also = "".join(f", r{i} AS ({c})" for i, c in enumerate(extra))
        try:
            # No savepoint (two more round trips on every write): after a conflict the caller
            # abandons the transaction and decides again in a new one, as every caller must.
            inserted = await self._conn.fetch(
                """WITH e AS (
                       INSERT INTO events (stream_id, stream_type, version, event_id, type,
                           schema_version, bureau, data, metadata, occurred_at)
                       SELECT $1, $2, * FROM unnest($3::int[], $4::uuid[], $5::text[],
                           $6::int[], $7::text[], $8::jsonb[], $9::jsonb[],
                           $10::timestamptz[])
                       RETURNING version, global_position, recorded_at,
                           tx_id::text::bigint AS tx_id),
                   o AS (
                       INSERT INTO outbox (event_id, aggregate_type, aggregate_id, type, topic,
                           payload, headers)
                       SELECT * FROM unnest($11::text[], $12::text[], $13::text[], $14::text[],
                           $15::text[], $16::json[], $17::json[]))"""
                + also
                + " SELECT e.* FROM e"
                + "".join(f", {c}" for c in checks),
                stream_id,
                stream_type,
                versions,
                [uuid.UUID(e.event_id) for e in events],
                [e.type for e in events],
                [e.schema_version for e in events],
                [e.bureau for e in events],
                data,
                meta,
                [e.occurred_at for e in events],
                *_outbox_columns(messages),
                *extra_args,
            )
        except asyncpg.UniqueViolationError as exc:
            if "events_pkey" in str(exc.constraint_name or exc):
                raise ConcurrencyConflict(stream_id, expected_version) from exc
            raise
        except asyncpg.PostgresError as exc:
            if getattr(exc, "sqlstate", None) != _CHECK_FAILED:
                raise
            for change in changes:
                if change.check and change.on_failure is not None:
                    change.on_failure()
            raise KeyClaimRefused(stream_id, expected_version) from exc
        by_version = {r["version"]: r for r in inserted}
        # The provisional events already hold the decoded data: only what the database
        # assigned is new (decoding the same JSON again cost measurable CPU per write).
        return [
            replace(
                r,
                recorded_at=by_version[r.version]["recorded_at"],
                position=Position(
                    by_version[r.version]["tx_id"], by_version[r.version]["global_position"]
                ),
            )
            for r in provisional
        ]

    async def apply(self, change: Change) -> None:
        """A read-model change on its own statement (e.g. when no event is appended)."""
        await self._conn.execute(change.statement(), *change.args)

    async def claim(self, principal: str, key: str, fingerprint: str) -> StoredResponse | None:
        """An earlier answer to this Idempotency-Key (same-key attempts wait for each other)."""
        return await idempotency.claim(self._conn, principal, key, fingerprint)

    async def remember(
        self, principal: str, key: str, fingerprint: str, status: int, body: Any
    ) -> None:
        await idempotency.remember(self._conn, principal, key, fingerprint, status, body)

    async def load(self, stream_id: str) -> list[RecordedEvent]:
        rows = await self._conn.fetch(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY version", stream_id
        )
        return [_record(r) for r in rows]

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        if not messages:
            return
        await self._conn.execute(
            """INSERT INTO outbox (event_id, aggregate_type, aggregate_id, type, topic,
                   payload, headers)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                   $5::text[], $6::json[], $7::json[])""",
            *_outbox_columns(messages),
        )


class _AppendsInOneTransaction:
    def transaction(self) -> Any:
        raise NotImplementedError

    async def append(
        self,
        stream_id: str,
        stream_type: str,
        expected_version: int,
        events: Sequence[NewEvent],
        outbox: Sequence[OutboxMessage] = (),
    ) -> list[RecordedEvent]:
        """Append and enqueue in one transaction of their own."""
        async with self.transaction() as tx:
            recorded: list[RecordedEvent] = await tx.append(
                stream_id, stream_type, expected_version, events
            )
            await tx.enqueue(outbox)
        return recorded


class PostgresEventStore(_AppendsInOneTransaction):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        with _staging():
            async with self.pool.acquire() as conn, conn.transaction():
                yield PostgresTransaction(conn)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[PostgresTransaction]:
        """A connection with no explicit transaction: each statement commits on its own.

        For a command whose one write is `append` with its read-model `changes` (plus
        idempotent subject-key creation): that statement is atomic by itself, and BEGIN and
        COMMIT would be two more round trips on every write.
        """
        with _staging():
            async with self.pool.acquire() as conn:
                yield PostgresTransaction(conn)

    async def load(self, stream_id: str) -> list[RecordedEvent]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY version", stream_id
            )
        return [_record(r) for r in rows]

    async def read_all(
        self, after: Position = START, limit: int = 1000, stream_type: str | None = None
    ) -> list[RecordedEvent]:
        # Only transactions older than the oldest one still running are visible-and-final:
        # a row from a transaction still open could later commit *behind* what we return.
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT {_COLUMNS} FROM events
                    WHERE (tx_id, global_position) > ($1::text::xid8, $2)
                      AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
                      AND ($4::text IS NULL OR stream_type = $4)
                    ORDER BY tx_id, global_position LIMIT $3""",
                str(after.tx_id),
                after.global_position,
                limit,
                stream_type,
            )
        return [_record(r) for r in rows]


class InMemoryTransaction:
    def __init__(self, store: InMemoryEventStore) -> None:
        self._store = store
        self.events: list[tuple[str, str, int, Sequence[NewEvent]]] = []
        self.messages: list[OutboxMessage] = []
        self.changes: list[Change] = []
        self.answers: list[tuple[str, str, str, int, Any]] = []

    @property
    def connection(self) -> None:
        return None

    async def append(
        self,
        stream_id: str,
        stream_type: str,
        expected_version: int,
        events: Sequence[NewEvent],
        publish: Publisher | None = None,
        changes: Sequence[Change] = (),
    ) -> list[RecordedEvent]:
        current = len(self._store.streams.get(stream_id, []))
        pending = sum(len(ev) for sid, _, _, ev in self.events if sid == stream_id)
        if current + pending != expected_version:
            raise ConcurrencyConflict(stream_id, expected_version, current + pending)
        self.events.append((stream_id, stream_type, expected_version, events))
        recorded = self._store._preview(stream_id, stream_type, expected_version, events)
        if publish is not None:
            self.messages.extend(m for r in recorded for m in publish(r))
        self.changes.extend(changes)
        return recorded

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        self.messages.extend(messages)

    async def apply(self, change: Change) -> None:
        self.changes.append(change)

    async def claim(self, principal: str, key: str, fingerprint: str) -> StoredResponse | None:
        return self._store.idempotency.claim(principal, key, fingerprint)

    async def remember(
        self, principal: str, key: str, fingerprint: str, status: int, body: Any
    ) -> None:
        self.answers.append((principal, key, fingerprint, status, body))

    async def load(self, stream_id: str) -> list[RecordedEvent]:
        return await self._store.load(stream_id)


class InMemoryEventStore(_AppendsInOneTransaction):
    """Same contract as the Postgres store, for domain and handler tests."""

    def __init__(self) -> None:
        self.streams: dict[str, list[RecordedEvent]] = {}
        self.log: list[RecordedEvent] = []
        self.outbox: list[OutboxMessage] = []
        self.changes: list[Change] = []  # read-model changes, in commit order (not run)
        self.idempotency = InMemoryKeys()

    def _preview(
        self, stream_id: str, stream_type: str, expected: int, events: Sequence[NewEvent]
    ) -> list[RecordedEvent]:
        now = datetime.now(UTC)
        base = len(self.log)
        return [
            RecordedEvent(
                stream_id=stream_id,
                stream_type=stream_type,
                version=expected + i + 1,
                event_id=e.event_id,
                type=e.type,
                schema_version=e.schema_version,
                bureau=e.bureau,
                data=json.loads(_dumps(dict(e.data))),
                metadata=json.loads(_dumps(dict(e.metadata))),
                occurred_at=e.occurred_at,
                recorded_at=now,
                position=Position(base + i + 1, base + i + 1),
            )
            for i, e in enumerate(events)
        ]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[InMemoryTransaction]:
        tx = InMemoryTransaction(self)
        yield tx
        # Commit: re-check versions so a conflicting writer that committed first wins.
        lengths: dict[str, int] = {}
        for stream_id, _, expected, events in tx.events:
            current = lengths.get(stream_id, len(self.streams.get(stream_id, [])))
            if current != expected:
                raise ConcurrencyConflict(stream_id, expected, current)
            lengths[stream_id] = current + len(events)
        for stream_id, stream_type, expected, events in tx.events:
            if any(e.event_id in {r.event_id for r in self.log} for e in events):
                raise ValueError("duplicate event id")
            recorded = self._preview(stream_id, stream_type, expected, events)
            self.streams.setdefault(stream_id, []).extend(recorded)
            self.log.extend(recorded)
        self.outbox.extend(tx.messages)
        self.changes.extend(tx.changes)
        for answer in tx.answers:
            self.idempotency.remember(*answer)

    def session(self) -> Any:
        """The same as a transaction here: the in-memory store commits at its end anyway."""
        return self.transaction()

    async def load(self, stream_id: str) -> list[RecordedEvent]:
        return list(self.streams.get(stream_id, []))

    async def read_all(
        self, after: Position = START, limit: int = 1000, stream_type: str | None = None
    ) -> list[RecordedEvent]:
        out = [
            e
            for e in self.log
            if e.position > after and (stream_type is None or e.stream_type == stream_type)
        ]
        return out[:limit]


async def load_on(conn: asyncpg.Connection, stream_id: str) -> list[RecordedEvent]:
    """A stream's events read on a connection the caller already holds.

    A request that holds one pooled connection must not wait for a second: enough such
    requests at once take the whole pool and wait for each other for ever.
    """
    return await PostgresTransaction(conn).load(stream_id)
