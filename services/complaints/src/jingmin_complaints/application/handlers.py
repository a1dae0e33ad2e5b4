"""Command handling: load an item, decide, append chained events, outbox and read model at once."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeVar

import asyncpg
from eventkit.auth import authorize
from eventkit.commands import CommandRequest, accepted, check_version, run_command
from eventkit.personal import Vault
from eventkit.policies import BureauPolicies
from eventkit.problems import Problem, conflict, forbidden, not_found, unprocessable
from eventkit.store import (
    ConcurrencyConflict,
    NewEvent,
    PostgresEventStore,
    PostgresTransaction,
    RecordedEvent,
)

from jingmin_complaints.adapters import read_model
from jingmin_complaints.domain.common import Fact, History
from jingmin_complaints.domain.complaint import Complaint
from jingmin_complaints.domain.errors import ConflictOfInterest, IllegalTransition, InvalidCommand
from jingmin_complaints.domain.policy import ComplaintPolicy
from jingmin_complaints.domain.supervision import Accountability, Inspection, Order
from jingmin_complaints.integration.messages import to_messages

# Who may do what. Complaints are sensitive: officers may file one for a citizen, only
# supervisors (督察) manage and read them in full.
RECEIVE_ROLES = ("intake_operator", "officer", "supervisor", "admin")
MANAGE_ROLES = ("supervisor", "admin")
READ_ROLES = ("supervisor", "commander", "admin")
REVEAL_ROLES = ("supervisor", "admin")
ISSUE_ROLES = ("supervisor", "commander", "admin")
REPORT_ROLES = ("officer", "supervisor", "commander", "admin")
CONFLICT_RETRIES = 5

Request = CommandRequest


class Item(Protocol):
    STREAM_TYPE: ClassVar[str]
    ID_FIELD: ClassVar[str]
    NOUN: ClassVar[str]
    version: int
    bureau: str
    station: str

    @property
    def stream_id(self) -> str: ...

    @property
    def status(self) -> Any: ...

    def apply(self, fact: Fact) -> None: ...


A = TypeVar("A", Complaint, Order, Inspection, Accountability)

# A decision gets the loaded item, the bureau policy, the transaction's connection (to
# encrypt personal fields) and "now"; it returns new facts.
Decision = Callable[[A, ComplaintPolicy, asyncpg.Connection, datetime], Awaitable[list[Fact]]]


def new_id() -> str:
    return uuid.uuid4().hex


def derived_id(*parts: str) -> str:
    """A deterministic aggregate id: the same trigger always names the same item."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def load(kind: type[A], stream_id: str, history: Sequence[RecordedEvent]) -> A:
    events: History = ((e.type, e.data, e.occurred_at) for e in history)
    return kind.from_history(stream_id, events)


def new_event(item: Item, fact: Fact, metadata: Mapping[str, Any]) -> NewEvent:
    # Every event carries the unit at the time it happened.
    data = {"station": item.station, **fact.data}
    return NewEvent(
        type=fact.type,
        data=data,
        occurred_at=fact.occurred_at,
        bureau=item.bureau,
        metadata={k: v for k, v in metadata.items() if v},
    )


async def write(
    tx: PostgresTransaction,
    item: A,
    facts: Sequence[Fact],
    metadata: Mapping[str, Any],
    now: datetime,
) -> list[RecordedEvent]:
    """Apply, append (chained when `tx` is) and project, in `tx`."""
    before = item.version
    for fact in facts:
        item.apply(fact)
    recorded = await tx.append(
        item.stream_id,
        item.STREAM_TYPE,
        before,
        [new_event(item, f, metadata) for f in facts],
        publish=to_messages,
    )
    await read_model.project(tx.connection, item, now)
    return recorded


def policy_cache() -> BureauPolicies[ComplaintPolicy]:
    return BureauPolicies(ComplaintPolicy)


class Commands:
    """Runs commands on complaints and supervision items; `store` should be chained."""

    def __init__(
        self,
        store: PostgresEventStore,
        vault: Vault,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.vault = vault
        self.clock = clock
        self.policies = policy_cache()

    async def execute(
        self,
        request: Request,
        kind: type[A],
        stream_id: str,
        decide: Decision[A],
        *,
        roles: Sequence[str],
        new_in: str | None = None,
        expected_version: int | None = None,
        status: int = 200,
        public: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Run one command; returns (HTTP status, body). Writes nothing unless it succeeds.

        `new_in` is the station of the item this command creates. `public` is the online
        form, whose caller has no token: it may only create, never touch an existing item.
        """

        async def attempt(tx: PostgresTransaction) -> tuple[int, dict[str, Any]]:
            conn = tx.connection
            history = [] if new_in else await tx.load(stream_id)
            item = load(kind, stream_id, history)
            if item.status is None and new_in is None:
                raise not_found(f"no {kind.NOUN} {stream_id}")
            station = item.station or new_in or ""
            if not public:
                # Authorise on the stored unit, so naming an id reaches nothing out of scope.
                authorize(request.principal, station, roles)
            if isinstance(item, Complaint) and item.subject_officer == request.principal.subject:
                raise forbidden("an officer cannot handle a complaint about themselves")
            check_version(kind.NOUN, stream_id, item.version, expected_version)
            policy = await self.policies.get(conn, item.bureau or station[:6])
            now = self.clock()
            try:
                facts = await decide(item, policy, conn, now)
            except ConflictOfInterest as exc:
                raise Problem(
                    422,
                    "Conflict of interest",
                    str(exc),
                    type_="urn:jingmin:problem:conflict-of-interest",
                ) from exc
            except IllegalTransition as exc:
                raise conflict(str(exc), item_status=item.status) from exc
            except InvalidCommand as exc:
                raise unprocessable(str(exc)) from exc
            recorded = await write(tx, item, facts, request.metadata(), now)
            body = accepted(kind.ID_FIELD, stream_id, item.version, item.status, recorded)
            return status, {**body, **(extra or {})}

        return await run_command(
            self.store,
            request,
            stream_id,
            attempt,
            noun=kind.NOUN,
            expected_version=expected_version,
        )

    async def sweep(self, kind: type[Complaint] | type[Order], stream_id: str, grace: int) -> int:
        """Append the overdue facts (and escalations) due for one item; returns how many."""
        for _attempt in range(CONFLICT_RETRIES):
            try:
                async with self.store.transaction() as tx:
                    history = await tx.load(stream_id)
                    now = self.clock()
                    metadata = {"actor": "system:sweeper"}
                    if kind is Complaint:
                        complaint = load(Complaint, stream_id, history)
                        facts = complaint.sweep(now, timedelta(seconds=grace))
                        recorded = await write(tx, complaint, facts, metadata, now) if facts else []
                    else:
                        order = load(Order, stream_id, history)
                        policy = await self.policies.get(tx.connection, order.bureau)
                        facts = order.sweep(now, timedelta(seconds=grace), policy)
                        recorded = await write(tx, order, facts, metadata, now) if facts else []
                    return len(recorded)
            except ConcurrencyConflict:
                continue  # a command landed meanwhile; it may have met or breached it itself
        return 0
