"""Command handling: load a callback, decide, store events, outbox and read model atomically."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
from eventkit.auth import authorize
from eventkit.commands import CommandRequest, accepted, check_version, run_command
from eventkit.personal import SubjectErased, Vault
from eventkit.policies import BureauPolicies
from eventkit.problems import conflict, not_found, unprocessable
from eventkit.store import (
    ConcurrencyConflict,
    NewEvent,
    PostgresEventStore,
    PostgresTransaction,
)

from jingmin_visits.adapters import read_model, survey_tokens
from jingmin_visits.domain.callback import Callback, Resolution, callback_id
from jingmin_visits.domain.errors import IllegalTransition, InvalidCommand
from jingmin_visits.domain.facts import Fact
from jingmin_visits.domain.policy import CallbackPolicy
from jingmin_visits.domain.vocabulary import Satisfaction, Security, Status
from jingmin_visits.integration.messages import to_messages

STREAM_TYPE = "callback"
WRITE_ROLES = ("officer", "supervisor", "admin")
READ_ROLES = ("officer", "supervisor", "commander", "admin")
CONFLICT_RETRIES = 5


Request = CommandRequest  # the name routes and tests use


# A decision gets the loaded callback, the transaction's connection (to encrypt free text
# under the callback's subject) and "now"; it returns new facts.
Decision = Callable[[Callback, asyncpg.Connection, datetime], Awaitable[list[Fact]]]


def load(callback_id: str, history: Any) -> Callback:
    return Callback.from_history(callback_id, ((e.type, e.data, e.occurred_at) for e in history))


def new_event(cb: Callback, fact: Fact, metadata: Mapping[str, Any]) -> NewEvent:
    # Every event carries the unit at the time it happened.
    data = {"station": cb.station, **fact.data}
    return NewEvent(
        type=fact.type,
        data=data,
        occurred_at=fact.occurred_at,
        bureau=cb.bureau,
        metadata={k: v for k, v in metadata.items() if v},
    )


def policy_cache() -> BureauPolicies[CallbackPolicy]:
    return BureauPolicies(CallbackPolicy)


async def decide_on_resolution(
    conn: asyncpg.Connection,
    resolution: Resolution,
    policy: CallbackPolicy,
    metadata: Mapping[str, Any],
    now: datetime,
) -> Callback | None:
    """Schedule or suppress the callback a resolution calls for, once, in `conn`'s transaction.

    The stream id is derived from the trigger: if it already exists (a replay read by a
    fresh consumer, a case resolved again after a reopen) nothing new is decided.
    """
    tx = PostgresTransaction(conn)
    cb_id = callback_id(
        resolution.case_id, resolution.trigger or policy.trigger_for(resolution.kind)
    )
    if await tx.load(cb_id):
        return None
    cb = Callback(cb_id)
    facts = cb.decide(
        resolution, policy, await read_model.is_opted_out(conn, resolution.subject_id)
    )
    if not facts:
        return None
    for fact in facts:
        cb.apply(fact)
    await tx.append(
        cb_id, STREAM_TYPE, 0, [new_event(cb, f, metadata) for f in facts], publish=to_messages
    )
    await read_model.project(conn, cb, facts[-1].data, now)
    return cb


class CallbackCommands:
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
        callback_id: str,
        decide: Decision,
        *,
        expected_version: int | None = None,
        status: int = 200,
    ) -> tuple[int, dict[str, Any]]:
        """Run one command; returns (HTTP status, body). Writes nothing unless it succeeds."""

        async def attempt(tx: PostgresTransaction) -> tuple[int, dict[str, Any]]:
            conn = tx.connection
            cb = load(callback_id, await tx.load(callback_id))
            if cb.status is None:
                raise not_found(f"no callback {callback_id}")
            authorize(request.principal, cb.station, WRITE_ROLES)
            check_version("callback", callback_id, cb.version, expected_version)
            now = self.clock()
            try:
                facts = await decide(cb, conn, now)
            except IllegalTransition as exc:
                raise conflict(str(exc), callback_status=cb.status) from exc
            except InvalidCommand as exc:
                raise unprocessable(str(exc)) from exc
            before = cb.version
            for fact in facts:
                cb.apply(fact)
            recorded = await tx.append(
                callback_id,
                STREAM_TYPE,
                before,
                [new_event(cb, f, request.metadata()) for f in facts],
                publish=to_messages,
            )
            if facts:
                await read_model.project(conn, cb, facts[-1].data, now)
            return status, accepted("callback_id", callback_id, cb.version, cb.status, recorded)

        return await run_command(
            self.store,
            request,
            callback_id,
            attempt,
            noun="callback",
            expected_version=expected_version,
        )

    async def expire(self, callback_id: str) -> int:
        """Record the expiry of one callback if its window has passed; returns 0 or 1."""
        for _attempt in range(CONFLICT_RETRIES):
            try:
                async with self.store.transaction() as tx:
                    cb = load(callback_id, await tx.load(callback_id))
                    facts = cb.expire(self.clock())
                    if not facts:
                        return 0
                    before = cb.version
                    for fact in facts:
                        cb.apply(fact)
                    await tx.append(
                        callback_id,
                        STREAM_TYPE,
                        before,
                        [new_event(cb, f, {"actor": "system:expiry"}) for f in facts],
                        publish=to_messages,
                    )
                    await read_model.project(tx.connection, cb, facts[-1].data, self.clock())
                    return 1
            except ConcurrencyConflict:
                continue  # an answer landed meanwhile; decide again
        return 0

    async def answer_survey(
        self,
        token_id: str,
        satisfaction: Satisfaction,
        security: Security,
        comment: str | None,
        wants_complaint: bool,
    ) -> survey_tokens.State:
        """A citizen's answer from the survey page: the link is used up by the same
        transaction that records the answer, so it counts once or not at all."""
        for _attempt in range(CONFLICT_RETRIES):
            try:
                async with self.store.transaction() as tx:
                    conn = tx.connection
                    found = await survey_tokens.look_up(conn, token_id, consume=True)
                    if found.state is not survey_tokens.State.VALID or found.callback_id is None:
                        return found.state
                    cb = load(found.callback_id, await tx.load(found.callback_id))
                    now = self.clock()
                    if cb.status != Status.SCHEDULED:
                        # Answered on the phone meanwhile, or the window closed.
                        raise _Refused(survey_tokens.State.EXPIRED)
                    sealed = None
                    if comment and cb.subject_id:
                        try:
                            sealed = await self.vault.encrypt(conn, cb.subject_id, comment)
                        except SubjectErased:
                            sealed = None
                    facts = cb.answer(
                        satisfaction,
                        security,
                        sealed,
                        max(now, cb.last_occurred_at or now),
                        now,
                        via="survey",
                        wants_complaint=wants_complaint,
                    )
                    before = cb.version
                    for fact in facts:
                        cb.apply(fact)
                    meta = {"actor": "citizen:survey", "correlation_id": cb.callback_id}
                    await tx.append(
                        cb.callback_id,
                        STREAM_TYPE,
                        before,
                        [new_event(cb, f, meta) for f in facts],
                        publish=to_messages,
                    )
                    await read_model.project(conn, cb, facts[-1].data, now)
                    return survey_tokens.State.VALID
            except _Refused as refused:
                return refused.state  # the transaction rolled back: the link stays unused
            except ConcurrencyConflict:
                continue
        raise conflict("the survey is being answered concurrently; retry")


class _Refused(Exception):
    def __init__(self, state: survey_tokens.State) -> None:
        super().__init__(state.value)
        self.state = state
