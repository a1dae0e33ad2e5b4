"""Running one command against one stream: idempotency, optimistic retries, pinned versions."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header, Request

from eventkit import idempotency
from eventkit.auth import Principal
from eventkit.problems import Problem, conflict
from eventkit.store import (
    ConcurrencyConflict,
    PostgresEventStore,
    PostgresTransaction,
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
                    earlier = await idempotency.claim(
                        tx.connection, request.principal.subject, key, request.fingerprint
                    )
                    if earlier is not None:
                        return earlier.status, earlier.body
                status, body = await attempt(tx)
                if key:
                    await idempotency.remember(
                        tx.connection,
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
