"""SMS surveys: send each SMS callback its single-use link, outside quiet hours, once.

The contact is borrowed from the service that owns it at send time (an audited read) and
is never stored here. A crash between the gateway's acceptance and the commit can send a
link twice; the second link is as good as the first and the answer is recorded once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import asyncpg
import httpx
from eventkit.contacts import (
    Contact,
    ContactErased,
    ContactNotFound,
    ContactRefused,
    ContactUnavailable,
)
from eventkit.store import PostgresEventStore, PostgresTransaction
from eventkit.worker import WorkerContext

from jingmin_visits.adapters import read_model, survey_tokens
from jingmin_visits.adapters.contacts import OwnerContacts
from jingmin_visits.adapters.sms import (
    HttpSmsGateway,
    SinkSmsGateway,
    SmsGateway,
    SmsRefused,
    SmsUnavailable,
)
from jingmin_visits.application.handlers import STREAM_TYPE, load, new_event, policy_cache
from jingmin_visits.domain.callback import Callback
from jingmin_visits.domain.facts import Fact
from jingmin_visits.domain.vocabulary import AttemptOutcome
from jingmin_visits.integration.messages import to_messages
from jingmin_visits.settings import VisitsSettings

log = logging.getLogger(__name__)

ACTOR = {"actor": "system:sms-survey"}


class ContactFetcher(Protocol):
    async def fetch(
        self, owner: str, item_id: str, purpose: str, correlation_id: str | None
    ) -> Contact: ...


def survey_text(signature: str, link: str, hours: int) -> str:
    # Short and plain: one SMS segment where possible, no case details (a phone is shared).
    return (
        f"【{signature}】您好，您近期联系过公安机关，请对我们的工作作出评价：{link} "
        f"（{hours}小时内有效）"
    )


class SurveyDispatcher:
    def __init__(
        self,
        store: PostgresEventStore,
        contacts: ContactFetcher,
        gateway: SmsGateway,
        signing_key: bytes,
        *,
        public_base_url: str,
        ttl: timedelta,
        signature: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store, self.contacts, self.gateway = store, contacts, gateway
        self.key, self.base = signing_key, public_base_url.rstrip("/")
        self.ttl, self.signature, self.clock = ttl, signature, clock
        self.policies = policy_cache()

    async def run_once(self, limit: int = 50) -> dict[str, int]:
        """One round over the SMS callbacks not yet sent; returns counts by what happened."""
        counts: dict[str, int] = {}
        async with self.store.pool.acquire() as conn:
            candidates = await read_model.sms_to_send(conn, limit)
            quiet = {
                bureau: await self._quiet(conn, bureau)
                for bureau in {r["bureau"] for r in candidates}
            }
        for row in candidates:
            if quiet[row["bureau"]]:
                outcome = "quiet_hours"  # shifted to the morning, never dropped
            else:
                try:
                    outcome = await self.dispatch(row["callback_id"])
                except _RollBack as exc:
                    outcome = exc.outcome
            counts[outcome] = counts.get(outcome, 0) + 1
        return counts

    async def _quiet(self, conn: asyncpg.Connection, bureau: str) -> bool:
        now = self.clock()
        policy = await self.policies.get(conn, bureau)
        return policy.out_of_quiet_hours(now) != now

    async def dispatch(self, callback_id: str) -> str:
        """Send one callback's link; everything it records commits together, or not at all."""
        async with self.store.transaction() as tx:
            conn = tx.connection
            locked = await conn.fetchval(
                """SELECT true FROM callbacks WHERE callback_id = $1 AND survey_sent_at IS NULL
                   FOR UPDATE SKIP LOCKED""",
                callback_id,
            )
            if not locked:
                return "taken"  # another dispatcher has it, or it is done
            cb = load(callback_id, await tx.load(callback_id))
            now = self.clock()
            if cb.status is None or cb.status.value != "scheduled" or cb.survey_sent:
                await read_model.mark_dispatched(conn, callback_id, now)
                return "closed"
            try:
                contact = await self.contacts.fetch(
                    cb.contact_owner, cb.contact_item, "survey", correlation_id=callback_id
                )
            except (ContactErased, ContactNotFound, ContactRefused) as exc:
                log.warning("no contact for %s: %s", callback_id, type(exc).__name__)
                contact = None
            except ContactUnavailable:
                return "contact_unavailable"  # nothing recorded; the next round tries again
            if contact is None or not contact.phone:
                await self._unreachable(tx, cb, now)
                return "unreachable"
            expires = min(now + self.ttl, cb.expires_at or now + self.ttl)
            token = await survey_tokens.mint(conn, self.key, callback_id, expires)
            hours = max(1, int((expires - now).total_seconds() // 3600))
            text = survey_text(self.signature, f"{self.base}/s/{token}", hours)
            try:
                await self.gateway.send(contact.phone, text, reference=callback_id)
            except SmsUnavailable:
                raise _RollBack("sms_unavailable") from None
            except SmsRefused:
                await self._unreachable(tx, cb, now)
                return "unreachable"
            await self._record(tx, cb, cb.send_survey(expires, now), now)
            return "sent"

    async def _unreachable(self, tx: PostgresTransaction, cb: Callback, now: datetime) -> None:
        facts = cb.attempt(AttemptOutcome.UNREACHABLE, max(now, cb.last_occurred_at or now), now)
        await self._record(tx, cb, facts, now)
        await read_model.mark_dispatched(tx.connection, cb.callback_id, now)

    async def _record(
        self, tx: PostgresTransaction, cb: Callback, facts: list[Fact], now: datetime
    ) -> None:
        before = cb.version
        for fact in facts:
            cb.apply(fact)
        await tx.append(
            cb.callback_id,
            STREAM_TYPE,
            before,
            [new_event(cb, f, ACTOR) for f in facts],
            publish=to_messages,
        )
        await read_model.project(tx.connection, cb, facts[-1].data, now)


class _RollBack(Exception):
    """Leave the transaction without recording anything (the link row goes too)."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


def gateway_for(
    settings: VisitsSettings, pool: asyncpg.Pool, http: httpx.AsyncClient
) -> SmsGateway:
    """The provider's HTTP API when configured, else the local sink (development, tests)."""
    if settings.sms_gateway_url is None:
        log.warning("VISITS_SMS_GATEWAY_URL is not set: SMS go to the local sink (sms_sink)")
        return SinkSmsGateway(pool)
    return HttpSmsGateway(
        http, str(settings.sms_gateway_url), settings.sms_gateway_token, settings.sms_sender_id
    )


async def run(ctx: WorkerContext) -> None:
    """Send SMS survey links until stopped (`jingmin worker --service visits`)."""
    settings = VisitsSettings()
    contacts = OwnerContacts(ctx.settings)
    async with httpx.AsyncClient(timeout=settings.sms_timeout_seconds) as http:
        dispatcher = SurveyDispatcher(
            PostgresEventStore(ctx.pool),
            contacts,
            gateway_for(settings, ctx.pool, http),
            survey_tokens.signing_key(ctx.settings),
            public_base_url=settings.public_base_url,
            ttl=timedelta(hours=settings.survey_ttl_hours),
            signature=settings.sms_signature,
        )

        async def step() -> int:
            counts = await dispatcher.run_once(settings.dispatch_batch)
            if any(k != "quiet_hours" for k in counts):
                log.info("sms surveys: %s", counts)
            return 0

        try:
            await ctx.repeat(step, settings.dispatch_interval_seconds, "sms surveys")
        finally:
            await contacts.aclose()
