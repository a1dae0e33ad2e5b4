"""Running one command against one stream: idempotency, optimistic retries, pinned versions."""

from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Protocol, TypeVar

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse

from eventkit import idempotency
from eventkit.auth import CurrentPrincipal, Principal, authorize
from eventkit.domain import Fact, IllegalTransition, NotFound
from eventkit.personal import Vault
from eventkit.problems import Problem, conflict
from eventkit.store import (
    Change,
    ConcurrencyConflict,
    NewEvent,
    PostgresEventStore,
    PostgresTransaction,
    Publisher,
    RecordedEvent,
    StaleTransaction,
)
from eventkit.telemetry import current_traceparent

CONFLICT_RETRIES = 5
_CORRELATION = re.compile(r"[A-Za-z0-9_.:-]{1,128}")

# The header every POST accepts; a retry with the same key gets the first answer.
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


@dataclass(frozen=True)
class CommandRequest:
    """Who asks, and the identifiers that make a retry recognisable."""

    principal: Principal
    idempotency_key: str | None = None
    fingerprint: str = ""
    correlation_id: str | None = None

    def metadata(self) -> dict[str, str]:
        """What every event this command writes records about its cause."""
        meta = {
            "actor": self.principal.subject,
            "traceparent": current_traceparent(),
            "correlation_id": self.correlation_id or str(uuid.uuid4()),
        }
        return {k: v for k, v in meta.items() if v}


async def command_request(
    request: Request, principal: Principal, key: str | None
) -> CommandRequest:
    """The command's identity from the HTTP request: Idempotency-Key, body fingerprint and
    X-Correlation-Id (checked, since it is stored and published)."""
    if key is not None:
        idempotency.check_key(key)
    fingerprint = idempotency.request_hash(request.method, request.url.path, await request.body())
    correlation = request.headers.get("x-correlation-id")
    if correlation is not None and not _CORRELATION.fullmatch(correlation):
        raise Problem(
            400,
            "Bad X-Correlation-Id",
            "X-Correlation-Id must be 1 to 128 letters, digits or -_.:",
            type_="urn:jingmin:problem:correlation-id",
        )
    return CommandRequest(principal, key, fingerprint, correlation)


Attempt = Callable[[PostgresTransaction], Awaitable[tuple[int, Any]]]


async def run_command(
    store: PostgresEventStore,
    request: CommandRequest,
    stream_id: str,
    attempt: Attempt,
    *,
    noun: str,
    expected_version: int | None = None,
    one_statement: bool = False,
) -> tuple[int, Any]:
    """Run `attempt` in a write transaction; returns its (HTTP status, body).

    An Idempotency-Key retry gets the first answer and writes nothing. A lost race is
    decided again on fresh state, unless the client pinned `expected_version`: then it is
    their conflict to resolve (409). A stale transaction is always ours to retry.

    `one_statement`: the attempt's only write is one `append` carrying its read-model
    changes (subject keys aside, which are idempotent and hold no personal data by
    themselves). Without an Idempotency-Key to record alongside it, that statement commits
    on its own, saving the BEGIN and COMMIT round trips.
    """
    for _ in range(CONFLICT_RETRIES):
        try:
            unit = (
                store.session()
                if one_statement and not request.idempotency_key
                else store.transaction()
            )
            async with unit as tx:
                key = request.idempotency_key
                if key:
                    earlier = await tx.claim(request.principal.subject, key, request.fingerprint)
                    if earlier is not None:
                        return earlier.status, earlier.body
                status, body = await attempt(tx)
                if key:
                    await tx.remember(
                        request.principal.subject,
                        key,
                        request.fingerprint,
                        status,
                        body,
                    )
                return status, body
        except ConcurrencyConflict as exc:
            if expected_version is not None and not isinstance(exc, StaleTransaction):
                raise conflict(
                    f"{noun} {stream_id} is at a newer version than {expected_version}: "
                    "reload and retry",
                    expected_version=expected_version,
                ) from exc
    raise conflict(f"{noun} {stream_id} is being changed concurrently; retry")


def answer(status: int, body: Any, location: str | None = None) -> JSONResponse:
    """A command's HTTP answer; a 201 says where the new item lives."""
    headers = {"Location": location} if status == 201 and location else None
    return JSONResponse(body, status_code=status, headers=headers)


def check_version(noun: str, stream_id: str, current: int, expected: int | None) -> None:
    """409 when the client pinned a version the stream has moved past."""
    if expected is not None and expected != current:
        raise conflict(
            f"{noun} {stream_id} is at version {current}, not {expected}",
            current_version=current,
        )


def accepted(
    id_field: str,
    stream_id: str,
    version: int,
    status: str | None,
    recorded: Sequence[RecordedEvent],
) -> dict[str, Any]:
    """The answer to a command: where the stream stands and what it recorded."""
    return {
        id_field: stream_id,
        "version": version,
        "status": status,
        "events": [
            {"type": e.type, "version": e.version, "occurred_at": e.occurred_at.isoformat()}
            for e in recorded
        ],
    }


class Item(Protocol):
    """What the command path needs of an aggregate: its version and how a fact changes it."""

    version: int

    def apply(self, fact: Fact) -> None: ...


A = TypeVar("A", bound=Item)
T = TypeVar("T")

# A decision: the loaded item, the write transaction (for the service's own look-ups and
# personal-data keys) and "now"; it returns the new facts or raises a DomainError.
Decision = Callable[[A, PostgresTransaction, datetime], Awaitable[list[Fact]]]
Changes = Callable[[A, Sequence[NewEvent], Sequence[RecordedEvent], datetime], Sequence[Change]]
After = Callable[[PostgresTransaction, A, Sequence[RecordedEvent], datetime], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Handlers:
    """A service's command handlers: the store and vault they write with, and their clock.

    A test passes a fixed clock; the in-memory store and a pool-less Vault make a unit of
    work with no database.
    """

    def __init__(
        self, store: PostgresEventStore, vault: Vault, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.store = store
        self.vault = vault
        self.clock = clock


def _status(item: object) -> Any:
    return getattr(item, "status", None)


@dataclass(frozen=True)
class Stream(Generic[A]):
    """What a service supplies for one kind of stream; the kernel runs its commands.

    By default an item exists once it has a status, and commands are authorised on its
    `station`. `changes` builds the read-model change that rides on the append statement (given the
    item after the facts, the new events, the stream's history and now); `after` is for a
    projection that needs statements of its own, which makes commands run in an explicit
    transaction. `status_field` names the item's status in a 409 answer.
    """

    noun: str
    id_field: str
    stream_type: str
    rebuild: Callable[[str, Sequence[RecordedEvent]], A]
    to_event: Callable[[A, Fact, Mapping[str, Any]], NewEvent]
    publish: Publisher
    exists: Callable[[A], bool] = lambda item: _status(item) is not None
    status: Callable[[A], Any] = lambda item: _status(item)
    unit: Callable[[A], str | None] = lambda item: getattr(item, "station", None)
    changes: Changes[A] | None = None
    after: After[A] | None = None
    status_field: str | None = None


async def write(
    tx: PostgresTransaction,
    kind: Stream[A],
    stream_id: str,
    item: A,
    facts: Sequence[Fact],
    metadata: Mapping[str, Any],
    now: datetime,
    history: Sequence[RecordedEvent] = (),
) -> list[RecordedEvent]:
    """Apply `facts` to `item`, then append them with their outbox rows and read model.

    No facts, no write: the item and its read model stay as they were.
    """
    if not facts:
        return []
    before = item.version
    for fact in facts:
        item.apply(fact)
    events = [kind.to_event(item, f, metadata) for f in facts]
    recorded = await tx.append(
        stream_id,
        kind.stream_type,
        before,
        events,
        publish=kind.publish,
        changes=kind.changes(item, events, history, now) if kind.changes else (),
    )
    if kind.after is not None and recorded:
        await kind.after(tx, item, recorded, now)
    return recorded


async def execute(
    store: PostgresEventStore,
    request: CommandRequest,
    kind: Stream[A],
    stream_id: str,
    decide: Decision[A],
    *,
    roles: Sequence[str] | None,
    clock: Callable[[], datetime],
    new_in: str | None = None,
    fresh_id: bool = False,
    expected_version: int | None = None,
    status: int = 200,
    guard: Callable[[A, Principal], None] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Run one command: load the stream, decide, write; returns (HTTP status, body).

    `new_in` is the station of the item the command creates: an existing stream of that id
    is a 409 (a `fresh_id` was just made up, so it is not even looked up). Otherwise a
    missing stream is a 404. The caller is authorised on the stored unit (`roles` None:
    the caller has no token, e.g. a public form, and may only create), so a token cannot
    reach another unit's item by naming its id. Writes nothing unless it all succeeds.
    """

    async def attempt(tx: PostgresTransaction) -> tuple[int, dict[str, Any]]:
        history = [] if fresh_id else await tx.load(stream_id)
        item = kind.rebuild(stream_id, history)
        if new_in is not None and kind.exists(item):
            raise conflict(f"{kind.noun} {stream_id} already exists")
        if new_in is None and not kind.exists(item):
            raise NotFound(f"no {kind.noun} {stream_id}")
        if roles is not None:
            authorize(request.principal, kind.unit(item) or new_in or "", roles)
        if guard is not None:
            guard(item, request.principal)
        check_version(kind.noun, stream_id, item.version, expected_version)
        now = clock()
        try:
            facts = await decide(item, tx, now)
        except IllegalTransition as exc:
            if kind.status_field:
                exc.extensions.setdefault(kind.status_field, kind.status(item))
            raise
        recorded = await write(tx, kind, stream_id, item, facts, request.metadata(), now, history)
        body = accepted(kind.id_field, stream_id, item.version, kind.status(item), recorded)
        return status, {**body, **(extra or {})}

    return await run_command(
        store,
        request,
        stream_id,
        attempt,
        noun=kind.noun,
        expected_version=expected_version,
        one_statement=kind.after is None,
    )


async def retrying(
    store: PostgresEventStore, attempt: Callable[[PostgresTransaction], Awaitable[T]], otherwise: T
) -> T:
    """`attempt` in a transaction, again on a lost race; `otherwise` after the last try.

    For the system's own writes (sweeps, expiries): a command that landed meanwhile is
    decided on again, and may itself have done what the attempt meant to do.
    """
    for _ in range(CONFLICT_RETRIES):
        try:
            async with store.transaction() as tx:
                return await attempt(tx)
        except ConcurrencyConflict:
            continue
    return otherwise


# What a command route does with its parsed request: (item id, body, request, principal,
# Idempotency-Key) in, the answer out.
Endpoint = Callable[[str, Any, Request, Principal, str | None], Awaitable[Response]]


def command_route(
    router: APIRouter,
    path: str,
    id_name: str,
    id_type: Any,
    body_type: type[Any],
    decide: Callable[..., Any],
    run: Endpoint,
    **route: Any,
) -> None:
    """Register `POST <path>` (which names `{id_name}`) for one command of a service.

    Every command shares the edge (token, Idempotency-Key, the body's expected_version and
    occurred_at), so a service writes only the decision: its name and docstring become the
    route's name, summary and description. `route` goes to `add_api_route` as it is.
    """

    async def endpoint(
        body: Any, request: Request, principal: Principal, key: str | None, **ids: str
    ) -> Response:
        return await run(ids[id_name], body, request, principal, key)

    # FastAPI reads parameters from the signature; the body type varies per command.
    param = inspect.Parameter.POSITIONAL_OR_KEYWORD
    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(id_name, param, annotation=id_type),
            inspect.Parameter("body", param, annotation=body_type),
            inspect.Parameter("request", param, annotation=Request),
            inspect.Parameter("principal", param, annotation=CurrentPrincipal),
            inspect.Parameter("key", param, annotation=IdempotencyKey, default=None),
        ],
        return_annotation=JSONResponse,
    )
    # Every command can name a missing item, meet a state or version it cannot act on, or
    # be refused by the domain: the documentation says so for each route.
    route["responses"] = {404: {}, 409: {}, 422: {}, **route.get("responses", {})}
    router.add_api_route(
        path,
        endpoint,
        methods=["POST"],
        name=decide.__name__,
        description=decide.__doc__,
        summary=(decide.__doc__ or "").split(":")[0].split(",")[0].rstrip("."),
        **route,
    )
