"""Command handling for visits and engagement events: load, decide, store, project, at once.

Both aggregates share this runner: the decision gets the loaded aggregate, the transaction's
connection (to encrypt free text under the right person) and "now", and returns facts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import asyncpg
from eventkit.auth import authorize
from eventkit.commands import CommandRequest, accepted, check_version, run_command
from eventkit.problems import conflict, not_found, unprocessable
from eventkit.store import NewEvent, PostgresEventStore, PostgresTransaction, RecordedEvent

from jingmin_visits.adapters import outreach_model
from jingmin_visits.domain.engagement import Engagement
from jingmin_visits.domain.errors import IllegalTransition, InvalidCommand
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
Projector = Callable[[asyncpg.Connection, A, list[RecordedEvent], datetime], Awaitable[None]]


@dataclass(frozen=True)
class Kind(Generic[A]):
    """What the runner needs to know about one aggregate type."""

    noun: str
    id_field: str
    stream_type: str
    from_history: Callable[[str, Any], A]
    exists: Callable[[A], bool]
    status: Callable[[A], str | None]
    project: Projector[A]


def _history(events: Any) -> Any:
    return ((e.type, e.data, e.occurred_at) for e in events)


VISIT: Kind[Visit] = Kind(
    noun="visit",
    id_field="visit_id",
    stream_type="visit",
    from_history=lambda id_, events: Visit.from_history(id_, _history(events)),
    exists=lambda v: v.status is not None,
    status=lambda v: v.status.value if v.status else None,
    project=outreach_model.project_visit,
)

ENGAGEMENT: Kind[Engagement] = Kind(
    noun="engagement",
    id_field="engagement_id",
    stream_type="engagement",
    from_history=lambda id_, events: Engagement.from_history(id_, _history(events)),
    exists=lambda e: e.held,
    status=lambda e: "held" if e.held else None,
    project=outreach_model.project_engagement,
)


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


class OutreachCommands:
    def __init__(
        self, store: PostgresEventStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.store = store
        self.clock = clock

    async def execute(
        self,
        kind: Kind[A],
        request: CommandRequest,
        stream_id: str,
        decide: Decision[A],
        *,
        new_in: str | None = None,
        expected_version: int | None = None,
        status: int = 200,
    ) -> tuple[int, dict[str, Any]]:
        """Run one command; `new_in` (a station) marks a command that creates the stream."""

        async def attempt(tx: PostgresTransaction) -> tuple[int, dict[str, Any]]:
            agg = kind.from_history(stream_id, await tx.load(stream_id))
            if new_in is not None:
                if kind.exists(agg):
                    raise conflict(f"{kind.noun} {stream_id} already exists")
                authorize(request.principal, new_in, WRITE_ROLES)
            else:
                if not kind.exists(agg):
                    raise not_found(f"no {kind.noun} {stream_id}")
                authorize(request.principal, agg.station, WRITE_ROLES)
            check_version(kind.noun, stream_id, agg.version, expected_version)
            now = self.clock()
            try:
                facts = await decide(agg, tx.connection, now)
            except IllegalTransition as exc:
                raise conflict(str(exc)) from exc
            except InvalidCommand as exc:
                raise unprocessable(str(exc)) from exc
            before = agg.version
            for fact in facts:
                agg.apply(fact)
            recorded = await tx.append(
                stream_id,
                kind.stream_type,
                before,
                [new_event(agg, f, request.metadata()) for f in facts],
                publish=to_messages,
            )
            await kind.project(tx.connection, agg, list(recorded), now)
            return status, accepted(
                kind.id_field, stream_id, agg.version, kind.status(agg), recorded
            )

        return await run_command(
            self.store,
            request,
            stream_id,
            attempt,
            noun=kind.noun,
            expected_version=expected_version,
        )
