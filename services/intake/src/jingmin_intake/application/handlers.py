"""Command handling: load a case, decide, store events, outbox and read model atomically."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from eventkit import idempotency
from eventkit.auth import Principal, authorize
from eventkit.personal import Vault
from eventkit.problems import conflict, not_found, unprocessable
from eventkit.store import (
    ConcurrencyConflict,
    NewEvent,
    PostgresEventStore,
    RecordedEvent,
    StaleTransaction,
)
from eventkit.telemetry import current_traceparent

from jingmin_intake.adapters import policies, read_model
from jingmin_intake.domain.case import Case, Fact
from jingmin_intake.domain.errors import IllegalTransition, InvalidCommand
from jingmin_intake.domain.policy import DeadlinePolicy
from jingmin_intake.integration.messages import to_messages

STREAM_TYPE = "case"
WRITE_ROLES = ("intake_operator", "officer", "supervisor", "admin")
READ_ROLES = ("intake_operator", "officer", "supervisor", "commander", "admin")
CONFLICT_RETRIES = 5
POLICY_TTL = 10.0


@dataclass(frozen=True)
class Request:
    """Who asks, and the identifiers that make a retry recognisable."""

    principal: Principal
    idempotency_key: str | None = None
    fingerprint: str = ""
    correlation_id: str | None = None


# A decision gets the loaded case, the bureau policy, the transaction's connection (to
# encrypt personal fields under the case's subject) and "now"; it returns new facts.
Decision = Callable[[Case, DeadlinePolicy, asyncpg.Connection, datetime], Awaitable[list[Fact]]]


def new_case_id() -> str:
    return uuid.uuid4().hex


class CaseCommands:
    def __init__(
        self,
        store: PostgresEventStore,
        vault: Vault,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.vault = vault
        self.clock = clock
        self._policies: dict[str, tuple[float, DeadlinePolicy]] = {}

    async def policy_for(self, conn: asyncpg.Connection, bureau: str) -> DeadlinePolicy:
        """The bureau's policy, cached briefly: it changes rarely and is read on every write.

        A change made through another process is seen within POLICY_TTL seconds; due times
        already written into events keep the policy they were computed with.
        """
        cached = self._policies.get(bureau)
        if cached is not None and time.monotonic() - cached[0] < POLICY_TTL:
            return cached[1]
        policy = await policies.policy_for(conn, bureau)
        self._policies[bureau] = (time.monotonic(), policy)
        return policy

    def forget_policy(self, bureau: str) -> None:
        self._policies.pop(bureau, None)

    async def execute(
        self,
        request: Request,
        case_id: str,
        decide: Decision,
        *,
        new_in: str | None = None,
        expected_version: int | None = None,
        status: int = 200,
    ) -> tuple[int, dict[str, Any]]:
        """Run one command; returns (HTTP status, body). Writes nothing unless it succeeds.

        `new_in` is the station of the case this command creates (its id is fresh, so there
        is no history to load).
        """
        for _attempt in range(CONFLICT_RETRIES):
            try:
                return await self._execute_once(
                    request, case_id, decide, new_in, expected_version, status
                )
            except ConcurrencyConflict as exc:
                if expected_version is not None and not isinstance(exc, StaleTransaction):
                    raise conflict(
                        f"case {case_id} is at a newer version than "
                        f"{expected_version}: reload and retry",
                        expected_version=expected_version,
                    ) from exc
        raise conflict(f"case {case_id} is being changed concurrently; retry")

    async def _execute_once(
        self,
        request: Request,
        case_id: str,
        decide: Decision,
        new_in: str | None,
        expected_version: int | None,
        status: int,
    ) -> tuple[int, dict[str, Any]]:
        principal = request.principal
        async with self.store.transaction() as tx:
            conn = tx.connection
            if request.idempotency_key:
                earlier = await idempotency.claim(
                    conn, principal.subject, request.idempotency_key, request.fingerprint
                )
                if earlier is not None:
                    return earlier.status, earlier.body
            history = [] if new_in else await tx.load(case_id)
            case = Case.from_history(case_id, ((e.type, e.data, e.occurred_at) for e in history))
            if case.status is None and new_in is None:
                raise not_found(f"no case {case_id}")
            station = case.station or new_in or ""
            bureau = case.bureau or station[:6]
            # Authorise on the stored unit, so a token can't reach another unit's case by
            # naming its id. Station codes start with their bureau's, so a bureau-wide scope
            # covers them and a station-scoped token reaches only its own station's cases.
            authorize(principal, station, WRITE_ROLES)
            if expected_version is not None and expected_version != case.version:
                raise conflict(
                    f"case {case_id} is at version {case.version}, not {expected_version}",
                    current_version=case.version,
                )
            policy = await self.policy_for(conn, bureau)
            try:
                facts = await decide(case, policy, conn, self.clock())
            except IllegalTransition as exc:
                raise conflict(str(exc), case_status=case.status) from exc
            except InvalidCommand as exc:
                raise unprocessable(str(exc)) from exc
            before = case.version
            for fact in facts:
                case.apply(fact)
            metadata = {
                "actor": principal.subject,
                "traceparent": current_traceparent(),
                "correlation_id": request.correlation_id or str(uuid.uuid4()),
            }
            recorded = await tx.append(
                case_id,
                STREAM_TYPE,
                before,
                [_new_event(case, f, {k: v for k, v in metadata.items() if v}) for f in facts],
                publish=to_messages,
            )
            await read_model.project(conn, case, _branch(history, recorded), self.clock())
            body = {
                "case_id": case_id,
                "version": case.version,
                "status": case.status,
                "events": [
                    {"type": e.type, "version": e.version, "occurred_at": e.occurred_at.isoformat()}
                    for e in recorded
                ],
            }
            if request.idempotency_key:
                await idempotency.remember(
                    conn,
                    principal.subject,
                    request.idempotency_key,
                    request.fingerprint,
                    status,
                    body,
                )
            return status, body

    async def sweep(self, case_id: str, grace: timedelta) -> int:
        """Append the breaches that are due for one case; returns how many were recorded."""
        for _attempt in range(CONFLICT_RETRIES):
            try:
                async with self.store.transaction() as tx:
                    history = await tx.load(case_id)
                    case = Case.from_history(
                        case_id, ((e.type, e.data, e.occurred_at) for e in history)
                    )
                    facts = case.sweep(self.clock(), grace)
                    if not facts:
                        return 0
                    before = case.version
                    for fact in facts:
                        case.apply(fact)
                    recorded = await tx.append(
                        case_id,
                        STREAM_TYPE,
                        before,
                        [_new_event(case, f, {"actor": "system:sweeper"}) for f in facts],
                        publish=to_messages,
                    )
                    await read_model.project(tx.connection, case, None, self.clock())
                    return len(recorded)
            except ConcurrencyConflict:
                continue  # a command landed meanwhile; it may have met or breached it itself
        return 0


def _new_event(case: Case, fact: Fact, metadata: Mapping[str, Any]) -> NewEvent:
    # Every event carries the unit at the time it happened: officers and cases move.
    data = {"station": case.station, **fact.data}
    return NewEvent(
        type=fact.type,
        data=data,
        occurred_at=fact.occurred_at,
        bureau=case.bureau,
        metadata=metadata,
    )


def _branch(history: list[RecordedEvent], recorded: list[RecordedEvent]) -> str | None:
    first = (history or recorded)[0]
    value = first.data.get("branch")
    return str(value) if value else None
