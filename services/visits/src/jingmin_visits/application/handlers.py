"""Command handling: load a callback, decide, store events, outbox and read model atomically."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from eventkit.commands import (
    CONFLICT_RETRIES,
    CommandRequest,
    Handlers,
    Stream,
    execute,
    retrying,
    write,
)
from eventkit.personal import SubjectErased
from eventkit.policies import BureauPolicies
from eventkit.problems import conflict
from eventkit.store import (
    Change,
    ConcurrencyConflict,
    NewEvent,
    PostgresTransaction,
    RecordedEvent,
)

from jingmin_visits.adapters import read_model, survey_tokens
from jingmin_visits.domain.callback import Callback, Resolution, callback_id
from jingmin_visits.domain.facts import Fact
from jingmin_visits.domain.policy import CallbackPolicy
from jingmin_visits.domain.vocabulary import Satisfaction, Security, Status
from jingmin_visits.integration.messages import to_messages

STREAM_TYPE = "callback"
WRITE_ROLES = ("officer", "supervisor", "admin")
READ_ROLES = ("officer", "supervisor", "commander", "admin")


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


def _changes(
    cb: Callback, events: Sequence[NewEvent], history: Sequence[RecordedEvent], now: datetime
) -> list[Change]:
    return [read_model.projection(cb, events[-1].data, now)]


CALLBACKS: Stream[Callback] = Stream(
    noun="callback",
    id_field="callback_id",
    stream_type=STREAM_TYPE,
    rebuild=load,
    to_event=new_event,
    publish=to_messages,
    changes=_changes,
    status_field="callback_status",
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
    await write(tx, CALLBACKS, cb_id, cb, facts, metadata, now)
    return cb


class CallbackCommands(Handlers):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
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

        async def on_connection(cb: Callback, tx: PostgresTransaction, now: datetime) -> list[Fact]:
            return await decide(cb, tx.connection, now)

        return await execute(
            self.store,
            request,
            CALLBACKS,
            callback_id,
            on_connection,
            roles=WRITE_ROLES,
            clock=self.clock,
            expected_version=expected_version,
            status=status,
        )

    async def expire(self, callback_id: str) -> int:
        """Record the expiry of one callback if its window has passed; returns 0 or 1."""

        async def attempt(tx: PostgresTransaction) -> int:
            cb = load(callback_id, await tx.load(callback_id))
            now = self.clock()
            metadata = {"actor": "system:expiry"}
            recorded = await write(tx, CALLBACKS, callback_id, cb, cb.expire(now), metadata, now)
            return 1 if recorded else 0

        # An answer that lands meanwhile is decided on again.
        return await retrying(self.store, attempt, 0)

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
                    if found.state is not survey_tokens.State.VALID:
                        return found.state
                    if found.callback_id is None:  # a wave's link: not this page's to spend
                        raise _Refused(survey_tokens.State.UNKNOWN)
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
                    meta = {"actor": "citizen:survey", "correlation_id": cb.callback_id}
                    await write(tx, CALLBACKS, cb.callback_id, cb, facts, meta, now)
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
