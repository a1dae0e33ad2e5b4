"""Command handling: load an item, decide, append chained events, outbox and read model at once."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeVar

import asyncpg
from eventkit.auth import Principal
from eventkit.commands import CommandRequest, Handlers, Stream, execute, retrying
from eventkit.commands import write as kernel_write
from eventkit.policies import BureauPolicies
from eventkit.problems import forbidden
from eventkit.store import (
    Change,
    NewEvent,
    PostgresTransaction,
    RecordedEvent,
)

from jingmin_complaints.adapters import read_model
from jingmin_complaints.adapters.read_model import Aggregate
from jingmin_complaints.domain.common import Fact, History
from jingmin_complaints.domain.complaint import Complaint
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


def _changes(
    item: Aggregate, events: Sequence[NewEvent], history: Sequence[RecordedEvent], now: datetime
) -> list[Change]:
    return [read_model.projection(item, now)]


def _stream(kind: type[A]) -> Stream[A]:
    return Stream(
        noun=kind.NOUN,
        id_field=kind.ID_FIELD,
        stream_type=kind.STREAM_TYPE,
        rebuild=lambda stream_id, history: load(kind, stream_id, history),
        to_event=new_event,
        publish=to_messages,
        changes=_changes,
        status_field="item_status",
    )


_STREAMS: dict[type[Any], Stream[Any]] = {
    k: _stream(k) for k in (Complaint, Order, Inspection, Accountability)
}


def stream_of(kind: type[A]) -> Stream[A]:
    """What the kernel's command path needs to know about one kind of item."""
    found: Stream[A] = _STREAMS[kind]
    return found


async def write(
    tx: PostgresTransaction,
    item: A,
    facts: Sequence[Fact],
    metadata: Mapping[str, Any],
    now: datetime,
) -> list[RecordedEvent]:
    """Apply, append (chained when `tx` is) and project, in `tx`."""
    kind: Stream[A] = stream_of(type(item))
    return await kernel_write(tx, kind, item.stream_id, item, facts, metadata, now)


def policy_cache() -> BureauPolicies[ComplaintPolicy]:
    return BureauPolicies(ComplaintPolicy)


class Commands(Handlers):
    """Runs commands on complaints and supervision items; `store` should be chained."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
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

        def no_self_handling(item: A, principal: Principal) -> None:
            if isinstance(item, Complaint) and item.subject_officer == principal.subject:
                raise forbidden("an officer cannot handle a complaint about themselves")

        async def with_policy(item: A, tx: PostgresTransaction, now: datetime) -> list[Fact]:
            station = item.station or new_in or ""
            policy = await self.policies.get(tx.connection, item.bureau or station[:6])
            return await decide(item, policy, tx.connection, now)

        return await execute(
            self.store,
            request,
            stream_of(kind),
            stream_id,
            with_policy,
            roles=None if public else roles,
            clock=self.clock,
            new_in=new_in,
            fresh_id=new_in is not None,
            expected_version=expected_version,
            status=status,
            guard=no_self_handling,
            extra=extra,
        )

    async def sweep(self, kind: type[Complaint] | type[Order], stream_id: str, grace: int) -> int:
        """Append the overdue facts (and escalations) due for one item; returns how many."""

        async def attempt(tx: PostgresTransaction) -> int:
            history = await tx.load(stream_id)
            now = self.clock()
            metadata = {"actor": "system:sweeper"}
            if kind is Complaint:
                complaint = load(Complaint, stream_id, history)
                facts = complaint.sweep(now, timedelta(seconds=grace))
                return len(await write(tx, complaint, facts, metadata, now))
            order = load(Order, stream_id, history)
            policy = await self.policies.get(tx.connection, order.bureau)
            facts = order.sweep(now, timedelta(seconds=grace), policy)
            return len(await write(tx, order, facts, metadata, now))

        # A command that lands meanwhile may have met or breached the deadline itself.
        return await retrying(self.store, attempt, 0)
