"""Command handling: load a case, decide, store events, outbox and read model atomically."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from eventkit.commands import CommandRequest, Handlers, Stream, execute, retrying, write
from eventkit.personal import SubjectErased, Vault, subject_ref
from eventkit.policies import BureauPolicies
from eventkit.settings import KernelSettings
from eventkit.store import (
    Change,
    NewEvent,
    PostgresTransaction,
    RecordedEvent,
)

from jingmin_intake.adapters import read_model
from jingmin_intake.domain.case import Case, Fact
from jingmin_intake.domain.policy import DeadlinePolicy
from jingmin_intake.integration import hotline
from jingmin_intake.integration.messages import to_messages

STREAM_TYPE = "case"
WRITE_ROLES = ("intake_operator", "officer", "supervisor", "admin")
READ_ROLES = ("intake_operator", "officer", "supervisor", "commander", "admin")
# Enforcement decisions and case classifications are police work, not an operator's.
OFFICER_ROLES = ("officer", "supervisor")


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
        # Staged: the key rides on the append (one round trip fewer on every new case).
        return subject_id, dict(await vault.encrypt_fields_staged(conn, subject_id, present))
    except SubjectErased:
        # 有警必接: an erased person who reaches the police again is served, under a fresh
        # subject that cannot be linked to what was erased.
        fresh = subject_ref({}, settings)
        return fresh, dict(await vault.encrypt_fields(conn, fresh, present))


def _rebuild(case_id: str, history: Sequence[RecordedEvent]) -> Case:
    return Case.from_history(case_id, ((e.type, e.data, e.occurred_at) for e in history))


def _changes(
    case: Case, events: Sequence[NewEvent], history: Sequence[RecordedEvent], now: datetime
) -> list[Change]:
    # The receipt (the stream's first event) carries the fields only it writes.
    receipt = history[0].data if history else events[0].data if events else {}
    return [
        read_model.projection(
            case, _receipt_field(receipt, "branch"), now, _receipt_field(receipt, "source_ref")
        )
    ]


CASES: Stream[Case] = Stream(
    noun="case",
    id_field="case_id",
    stream_type=STREAM_TYPE,
    rebuild=_rebuild,
    to_event=lambda case, fact, metadata: event_for(case, fact, metadata),
    publish=to_messages,
    changes=_changes,
    status_field="case_status",
)


class CaseCommands(Handlers):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
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
        roles: Sequence[str] = WRITE_ROLES,
    ) -> tuple[int, dict[str, Any]]:
        """Run one command; returns (HTTP status, body). Writes nothing unless it succeeds.

        `new_in` is the station of the case this command creates (its id is fresh, so there
        is no history to load).
        """

        async def with_policy(case: Case, tx: PostgresTransaction, now: datetime) -> list[Fact]:
            station = case.station or new_in or ""
            policy = await self.policies.get(tx.connection, case.bureau or station[:6])
            return await decide(case, policy, tx.connection, now)

        return await execute(
            self.store,
            request,
            CASES,
            case_id,
            with_policy,
            roles=roles,
            clock=self.clock,
            new_in=new_in,
            fresh_id=new_in is not None,
            expected_version=expected_version,
            status=status,
        )

    async def sweep(
        self, case_id: str, grace: timedelta, deadlines: Collection[str] | None = None
    ) -> int:
        """Append the breaches that are due for one case; returns how many were recorded.

        `deadlines`: only these promises (the ones the scan found ripe), None for all.
        """

        async def attempt(tx: PostgresTransaction) -> int:
            history = await tx.load(case_id)
            case = _rebuild(case_id, history)
            now = self.clock()
            facts = case.sweep(now, grace, deadlines)
            metadata = {"actor": "system:sweeper"}
            return len(await write(tx, CASES, case_id, case, facts, metadata, now, history))

        # A command that lands meanwhile may have met or breached the promise itself.
        return await retrying(self.store, attempt, 0)


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
