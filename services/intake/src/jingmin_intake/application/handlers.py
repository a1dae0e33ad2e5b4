"""Command handling: load a case, decide, store events, outbox and read model atomically."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from eventkit.auth import authorize
from eventkit.commands import CommandRequest, accepted, check_version, run_command
from eventkit.personal import SubjectErased, Vault, subject_ref
from eventkit.policies import BureauPolicies
from eventkit.problems import conflict, not_found, unprocessable
from eventkit.settings import KernelSettings
from eventkit.store import (
    ConcurrencyConflict,
    NewEvent,
    PostgresEventStore,
    PostgresTransaction,
)

from jingmin_intake.adapters import read_model
from jingmin_intake.domain.case import Case, Fact
from jingmin_intake.domain.errors import IllegalTransition, InvalidCommand
from jingmin_intake.domain.policy import DeadlinePolicy
from jingmin_intake.integration import hotline
from jingmin_intake.integration.messages import to_messages

STREAM_TYPE = "case"
WRITE_ROLES = ("intake_operator", "officer", "supervisor", "admin")
READ_ROLES = ("intake_operator", "officer", "supervisor", "commander", "admin")
CONFLICT_RETRIES = 5


Request = CommandRequest  # the name routes and tests use


# A decision gets the loaded case, the bureau policy, the transaction's connection (to
# encrypt personal fields under the case's subject) and "now"; it returns new facts.
Decision = Callable[[Case, DeadlinePolicy, asyncpg.Connection, datetime], Awaitable[list[Fact]]]


def new_case_id() -> str:
    return uuid.uuid4().hex


async def seal_for_subject(
    vault: Vault,
    settings: KernelSettings,
    conn: asyncpg.Connection,
    subject_id: str,
    fields: Mapping[str, str | None],
) -> tuple[str, dict[str, Any]]:
    """A new case's subject and its fields encrypted under them, in one key lookup."""
    present = {k: v for k, v in fields.items() if v}
    try:
        return subject_id, dict(await vault.encrypt_fields(conn, subject_id, present))
    except SubjectErased:
        # 有警必接: an erased person who reaches the police again is served, under a fresh
        # subject that cannot be linked to what was erased.
        fresh = subject_ref({}, settings)
        return fresh, dict(await vault.encrypt_fields(conn, fresh, present))


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
        self.policies = BureauPolicies(DeadlinePolicy)

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

        async def attempt(tx: PostgresTransaction) -> tuple[int, dict[str, Any]]:
            conn = tx.connection
            history = [] if new_in else await tx.load(case_id)
            case = Case.from_history(case_id, ((e.type, e.data, e.occurred_at) for e in history))
            if case.status is None and new_in is None:
                raise not_found(f"no case {case_id}")
            station = case.station or new_in or ""
            # Authorise on the stored unit, so a token can't reach another unit's case by
            # naming its id. Station codes start with their bureau's, so a bureau-wide scope
            # covers them and a station-scoped token reaches only its own station's cases.
            authorize(request.principal, station, WRITE_ROLES)
            check_version("case", case_id, case.version, expected_version)
            policy = await self.policies.get(conn, case.bureau or station[:6])
            try:
                facts = await decide(case, policy, conn, self.clock())
            except IllegalTransition as exc:
                raise conflict(str(exc), case_status=case.status) from exc
            except InvalidCommand as exc:
                raise unprocessable(str(exc)) from exc
            before = case.version
            for fact in facts:
                case.apply(fact)
            metadata = request.metadata()
            events = [event_for(case, f, metadata) for f in facts]
            # The receipt (the stream's first event) carries the fields only it writes.
            receipt = history[0].data if history else events[0].data if events else {}
            recorded = await tx.append(
                case_id,
                STREAM_TYPE,
                before,
                events,
                publish=to_messages,
                changes=[
                    read_model.projection(
                        case,
                        _receipt_field(receipt, "branch"),
                        self.clock(),
                        _receipt_field(receipt, "source_ref"),
                    )
                ],
            )
            return status, accepted("case_id", case_id, case.version, case.status, recorded)

        return await run_command(
            self.store,
            request,
            case_id,
            attempt,
            noun="case",
            expected_version=expected_version,
            one_statement=True,
        )

    async def sweep(
        self, case_id: str, grace: timedelta, deadlines: Collection[str] | None = None
    ) -> int:
        """Append the breaches that are due for one case; returns how many were recorded.

        `deadlines`: only these promises (the ones the scan found ripe), None for all.
        """
        for _attempt in range(CONFLICT_RETRIES):
            try:
                async with self.store.transaction() as tx:
                    history = await tx.load(case_id)
                    case = Case.from_history(
                        case_id, ((e.type, e.data, e.occurred_at) for e in history)
                    )
                    facts = case.sweep(self.clock(), grace, deadlines)
                    if not facts:
                        return 0
                    before = case.version
                    for fact in facts:
                        case.apply(fact)
                    recorded = await tx.append(
                        case_id,
                        STREAM_TYPE,
                        before,
                        [event_for(case, f, {"actor": "system:sweeper"}) for f in facts],
                        publish=to_messages,
                        changes=[read_model.projection(case, None, self.clock())],
                    )
                    return len(recorded)
            except ConcurrencyConflict:
                continue  # a command landed meanwhile; it may have met or breached it itself
        return 0


def event_for(case: Case, fact: Fact, metadata: Mapping[str, Any]) -> NewEvent:
    # Every event carries the unit at the time it happened: officers and cases move.
    data = {"station": case.station, **fact.data}
    shared = hotline.snapshot(case, fact)
    if shared is not None:
        data["hotline"] = shared  # what the 12345 hotline may see (integration/hotline.py)
    return NewEvent(
        type=fact.type,
        data=data,
        occurred_at=fact.occurred_at,
        bureau=case.bureau,
        metadata=metadata,
    )


def _receipt_field(receipt: Mapping[str, Any], name: str) -> str | None:
    value = receipt.get(name)
    return str(value) if value else None
