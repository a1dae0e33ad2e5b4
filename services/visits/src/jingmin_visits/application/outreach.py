"""Command handling for visits and engagement events: load, decide, store, project, at once.

Both aggregates share this runner: the decision gets the loaded aggregate, the transaction's
connection (to encrypt free text under the right person) and "now", and returns facts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import asyncpg
from eventkit.commands import CommandRequest, Stream, execute
from eventkit.store import NewEvent, PostgresEventStore, PostgresTransaction, RecordedEvent

from jingmin_visits.adapters import outreach_model
from jingmin_visits.domain.engagement import Engagement
from jingmin_visits.domain.facts import Fact
from jingmin_visits.domain.visit import Visit
from jingmin_visits.integration.messages import to_messages

WRITE_ROLES = ("officer", "supervisor", "admin")
READ_ROLES = ("officer", "supervisor", "commander", "admin")


class Aggregate(Protocol):
    version: int
    bureau: str
    station: str

    def apply(self, fact: Fact) -> None: ...


A = TypeVar("A", Visit, Engagement)
Decision = Callable[[A, asyncpg.Connection, datetime], Awaitable[list[Fact]]]
Kind = Stream  # what the routes name an aggregate type by


def _history(events: Any) -> Any:
    return ((e.type, e.data, e.occurred_at) for e in events)


def new_event(agg: Aggregate, fact: Fact, metadata: Mapping[str, Any]) -> NewEvent:
    # Every event carries the unit at the time it happened.
    data = {"station": fact.data.get("station", agg.station), **fact.data}
    return NewEvent(
        type=fact.type,
        data=data,
        occurred_at=fact.occurred_at,
        bureau=fact.data.get("bureau", agg.bureau),
        metadata={k: v for k, v in metadata.items() if v},
    )


async def _project_visit(
    tx: PostgresTransaction, visit: Visit, recorded: Sequence[RecordedEvent], now: datetime
) -> None:
    await outreach_model.project_visit(tx.connection, visit, list(recorded), now)


async def _project_engagement(
    tx: PostgresTransaction,
    engagement: Engagement,
    recorded: Sequence[RecordedEvent],
    now: datetime,
) -> None:
    await outreach_model.project_engagement(tx.connection, engagement, list(recorded), now)


VISIT: Stream[Visit] = Stream(
    noun="visit",
    id_field="visit_id",
    stream_type="visit",
    rebuild=lambda id_, events: Visit.from_history(id_, _history(events)),
    status=lambda v: v.status.value if v.status else None,
    to_event=new_event,
    publish=to_messages,
    after=_project_visit,
)

ENGAGEMENT: Stream[Engagement] = Stream(
    noun="engagement",
    id_field="engagement_id",
    stream_type="engagement",
    rebuild=lambda id_, events: Engagement.from_history(id_, _history(events)),
    exists=lambda e: e.held,
    status=lambda e: "held" if e.held else None,
    to_event=new_event,
    publish=to_messages,
    after=_project_engagement,
)


class OutreachCommands:
    def __init__(
        self, store: PostgresEventStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.store = store
        self.clock = clock

    async def execute(
        self,
        kind: Stream[A],
        request: CommandRequest,
        stream_id: str,
        decide: Decision[A],
        *,
        new_in: str | None = None,
        expected_version: int | None = None,
        status: int = 200,
    ) -> tuple[int, dict[str, Any]]:
        """Run one command; `new_in` (a station) marks a command that creates the stream."""

        async def on_connection(agg: A, tx: PostgresTransaction, now: datetime) -> list[Fact]:
            return await decide(agg, tx.connection, now)

        return await execute(
            self.store,
            request,
            kind,
            stream_id,
            on_connection,
            roles=WRITE_ROLES,
            clock=self.clock,
            new_in=new_in,
            expected_version=expected_version,
            status=status,
        )
