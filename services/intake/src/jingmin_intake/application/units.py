"""Unit register commands: a station's or beat's events, outbox rows and read model at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from eventkit import divisions
from eventkit.commands import CommandRequest, Decision, Handlers, Stream, execute
from eventkit.domain import Fact
from eventkit.store import Change, NewEvent, PostgresTransaction, RecordedEvent

from jingmin_intake.domain.unit import ACTIVE, Unit
from jingmin_intake.integration.messages import to_messages

STREAM_TYPE = "unit"
# The register names what commanders read on every board: only a bureau admin edits it.
ADMIN_ROLES = ("admin",)


def rebuild(code: str, history: Sequence[RecordedEvent]) -> Unit:
    return Unit.from_history(code, ((e.type, e.data, e.occurred_at) for e in history))


def _event(unit: Unit, fact: Fact, metadata: Mapping[str, Any]) -> NewEvent:
    # `station` as on every intake event: the station the unit is, or the beat belongs to.
    return NewEvent(
        type=fact.type,
        data={"station": unit.code[:9], **fact.data},
        occurred_at=fact.occurred_at,
        bureau=unit.bureau,
        metadata=metadata,
    )


def _changes(
    unit: Unit, events: Sequence[NewEvent], history: Sequence[RecordedEvent], now: datetime
) -> list[Change]:
    registered_at = (history[0] if history else events[0]).occurred_at
    return [
        Change(
            (
                """INSERT INTO units (code, bureau, kind, parent, name, status, version,
                       registered_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                   ON CONFLICT (code) DO UPDATE SET name = excluded.name,
                       status = excluded.status, version = excluded.version,
                       updated_at = excluded.updated_at""",
            ),
            (
                unit.code,
                unit.bureau,
                unit.kind,
                unit.parent,
                unit.name,
                unit.status,
                unit.version,
                registered_at,
                now,
            ),
        )
    ]


UNITS: Stream[Unit] = Stream(
    noun="unit",
    id_field="code",
    stream_type=STREAM_TYPE,
    rebuild=rebuild,
    to_event=_event,
    publish=to_messages,
    unit=lambda unit: unit.code,
    changes=_changes,
    status_field="unit_status",
)


async def _parent_active(tx: PostgresTransaction, code: str) -> bool:
    return rebuild(code, await tx.load(code)).status == ACTIVE


async def _active_beats(tx: PostgresTransaction, station: str) -> int:
    # Read-committed: a beat registered by a transaction still in flight is not counted.
    # Acceptable for a register an admin edits by hand; the beat can be retired after.
    count: int = await tx.connection.fetchval(
        "SELECT count(*) FROM units WHERE parent = $1 AND status = 'active'", station
    )
    return count


async def _run(
    handlers: Handlers,
    request: CommandRequest,
    code: str,
    decide: Decision[Unit],
    *,
    new: bool = False,
    expected_version: int | None = None,
) -> tuple[int, dict[str, Any]]:
    return await execute(
        handlers.store,
        request,
        UNITS,
        code,
        decide,
        roles=ADMIN_ROLES,
        clock=handlers.clock,
        new_in=code if new else None,
        expected_version=expected_version,
        status=201 if new else 200,
    )


async def register(
    handlers: Handlers, request: CommandRequest, code: str, name: str, at: datetime | None
) -> tuple[int, dict[str, Any]]:
    """Register a station or beat; 409 when the code is already registered."""

    async def decide(unit: Unit, tx: PostgresTransaction, now: datetime) -> list[Fact]:
        parent_active = len(code) != 11 or await _parent_active(tx, code[:9])
        known = divisions.name(code[:6]) is not None
        return unit.register(
            name, bureau_known=known, parent_active=parent_active, at=at or now, now=now
        )

    return await _run(handlers, request, code, decide, new=True)


async def rename(
    handlers: Handlers,
    request: CommandRequest,
    code: str,
    name: str,
    at: datetime | None,
    expected_version: int | None,
) -> tuple[int, dict[str, Any]]:
    async def decide(unit: Unit, tx: PostgresTransaction, now: datetime) -> list[Fact]:
        return unit.rename(name, at or now, now)

    return await _run(handlers, request, code, decide, expected_version=expected_version)


async def retire(
    handlers: Handlers,
    request: CommandRequest,
    code: str,
    at: datetime | None,
    expected_version: int | None,
) -> tuple[int, dict[str, Any]]:
    async def decide(unit: Unit, tx: PostgresTransaction, now: datetime) -> list[Fact]:
        beats = await _active_beats(tx, code) if unit.kind == "station" else 0
        return unit.retire(beats, at or now, now)

    return await _run(handlers, request, code, decide, expected_version=expected_version)
