"""The wave questionnaire by SMS: invite a station's sampled units, record the page's answers.

A sampled unit's number is in the wave's frame, encrypted under the person; it is revealed
only to send the link, and that read is audited in `contact_reads` like an interviewer's.
Each unit is invited in its own transaction (the link row, the SMS and the
`SurveyInvitationSent` fact commit together), so a gateway outage halfway leaves the
units already invited invited and the rest untouched for the next run. A crash between
the provider's acceptance and the commit can send a second link; one answer is recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from eventkit.auth import Principal
from eventkit.commands import CONFLICT_RETRIES, write
from eventkit.divisions import name as division_name
from eventkit.personal import ERASED, SubjectErased, Vault
from eventkit.problems import conflict
from eventkit.store import ConcurrencyConflict, PostgresEventStore, PostgresTransaction

from jingmin_visits.adapters import read_model, survey_tokens
from jingmin_visits.adapters.sms import SmsGateway, SmsRefused, SmsUnavailable
from jingmin_visits.application.handlers import CallbackCommands
from jingmin_visits.application.survey import SURVEY_WAVE, load
from jingmin_visits.domain.errors import DomainError, IllegalTransition, NotFound
from jingmin_visits.domain.survey import Outcome, SurveyMode, SurveyWave

log = logging.getLogger(__name__)

PAGE_ACTOR = "survey-page"  # who "raised" a problem typed on the page (the person, unnamed)


def invitation_text(signature: str, link: str, hours: int) -> str:
    # Plain and short: says what the survey is, never who was sampled or why. No "reply TD
    # to opt out" line: replies from the provider are not wired yet, so it would not work.
    return (
        f"【{signature}】您好，您被随机选中参加群众安全感和满意度调查（匿名），"
        f"请点击填写：{link} （{hours}小时内有效）"
    )


def area_type_of(bureau: str) -> str:
    """The survey knows no finer place than the bureau: a district (区) is urban, a county
    (县, 旗) rural, a county-level city (市) suburban; the intake case needs one of them."""
    found = division_name(bureau) or ""
    if found.endswith("区"):
        return "urban"
    if found.endswith(("县", "旗")):
        return "rural"
    return "suburban"


@dataclass
class Answer:
    """What the page submitted, already checked against the questionnaire's codes."""

    answers: dict[str, str]
    comment: str | None
    problem_text: str | None

    @property
    def outcome(self) -> Outcome:
        # Both headline items: completed; anything less (but something): partial.
        complete = "security" in self.answers and "satisfaction" in self.answers
        return Outcome.COMPLETED if complete else Outcome.PARTIAL


class WaveSms:
    def __init__(
        self,
        commands: CallbackCommands,
        gateway: SmsGateway,
        key: bytes,
        *,
        public_base_url: str,
        ttl: timedelta,
        signature: str,
    ) -> None:
        self.commands, self.gateway, self.key = commands, gateway, key
        self.base, self.ttl, self.signature = public_base_url.rstrip("/"), ttl, signature

    @property
    def store(self) -> PostgresEventStore:
        return self.commands.store

    @property
    def vault(self) -> Vault:
        return self.commands.vault

    async def invite_station(
        self, wave_id: str, station: str, principal: Principal, correlation_id: str | None
    ) -> dict[str, int]:
        """Send every contactable, unanswered, not-yet-invited unit of `station` its link.

        Idempotent: a unit whose link is still valid, or who answered, gets nothing; a
        second run sends only what the first could not.
        """
        counts: dict[str, int] = {}
        now = self.commands.clock()
        async with self.store.pool.acquire() as conn:
            wave = load(wave_id, await PostgresTransaction(conn).load(wave_id))
            if wave.status is None:
                raise NotFound(f"no survey wave {wave_id}")
            policy = await self.commands.policies.get(conn, wave.bureau)
        wave.check_sms_fieldwork(now, quiet_hours=policy.out_of_quiet_hours(now) != now)
        draw = wave.draws.get(station)
        if draw is None:
            raise IllegalTransition(f"station {station} has no sample drawn in this wave")
        for unit_id in draw.unit_ids:
            outcome = await self._invite(wave_id, unit_id, principal, correlation_id)
            counts[outcome] = counts.get(outcome, 0) + 1
            if outcome == "sms_unavailable":
                break  # the provider is down: the rest wait for the next run
        return counts

    async def _invite(
        self, wave_id: str, unit_id: str, principal: Principal, correlation_id: str | None
    ) -> str:
        for _attempt in range(CONFLICT_RETRIES):
            try:
                async with self.store.transaction() as tx:
                    return await self._invite_in(tx, wave_id, unit_id, principal, correlation_id)
            except _RollBack as exc:
                return exc.outcome
            except ConcurrencyConflict:
                continue  # an answer or another invitation landed: decide again
        raise conflict("the wave is being written concurrently; retry")

    async def _invite_in(
        self,
        tx: PostgresTransaction,
        wave_id: str,
        unit_id: str,
        principal: Principal,
        correlation_id: str | None,
    ) -> str:
        conn = tx.connection
        wave = load(wave_id, await tx.load(wave_id))
        unit = wave.unit(unit_id)
        now = self.commands.clock()
        blocked = wave.invitation_blocker(
            unit_id, now, await read_model.is_opted_out(conn, unit.subject_id)
        )
        if blocked is not None:
            return blocked
        frame_unit = next(u for u in wave.frames[unit.station] if u.unit_id == unit_id)
        revealed = await self.vault.reveal_fields(conn, frame_unit.person)
        phone = (revealed or {}).get("phone")
        item = f"{wave_id}/{unit_id}"
        if not phone or phone == ERASED:
            await read_model.record_read(
                conn, principal, "survey", item, unit.subject_id, unit.station, "erased", 200,
                correlation_id,
            )  # fmt: skip
            return "no_phone"
        # The number is read to send the link, by the supervisor who sent them: audited.
        await read_model.record_read(
            conn, principal, "survey", item, unit.subject_id, unit.station, "granted", 200,
            correlation_id,
        )  # fmt: skip
        expires = now + self.ttl
        token = await survey_tokens.mint_for_unit(conn, self.key, wave_id, unit_id, expires)
        hours = max(1, int((expires - now).total_seconds() // 3600))
        text = invitation_text(self.signature, f"{self.base}/s/{token}", hours)
        try:
            await self.gateway.send(str(phone), text, reference=item)
        except SmsUnavailable:
            raise _RollBack("sms_unavailable") from None
        except SmsRefused:
            raise _RollBack("refused_by_provider") from None
        meta = {"actor": principal.subject, "correlation_id": correlation_id}
        await write(tx, SURVEY_WAVE, wave_id, wave, wave.invite(unit_id, expires, now, now),
                    meta, now)  # fmt: skip
        return "sent"

    async def answer(self, token_id: str, answer: Answer) -> survey_tokens.State:
        """The respondent's answers from the page: the link is used up by the same
        transaction that records them (via the same domain code as the officer API), so
        they count once or not at all. A wave that no longer takes them (fieldwork over,
        the unit answered by an interviewer meanwhile) records nothing: the link is spent."""
        for _attempt in range(CONFLICT_RETRIES):
            try:
                async with self.store.transaction() as tx:
                    conn = tx.connection
                    found = await survey_tokens.look_up(conn, token_id, consume=True)
                    if found.state is not survey_tokens.State.VALID:
                        return found.state
                    if found.wave_id is None or found.unit_id is None:
                        raise _Refused(survey_tokens.State.UNKNOWN)
                    wave = load(found.wave_id, await tx.load(found.wave_id))
                    facts = await self._decide(conn, wave, found.unit_id, answer)
                    meta = {"actor": "citizen:survey", "correlation_id": found.wave_id}
                    now = self.commands.clock()
                    await write(tx, SURVEY_WAVE, wave.wave_id, wave, facts, meta, now)
                    return survey_tokens.State.VALID
            except _Refused as refused:
                return refused.state  # rolled back: nothing recorded, the link unused
            except ConcurrencyConflict:
                continue
        raise conflict("the survey is being answered concurrently; retry")

    async def _decide(self, conn: Any, wave: SurveyWave, unit_id: str, answer: Answer) -> list[Any]:
        unit = wave.unit(unit_id)
        now = self.commands.clock()
        sealed: dict[str, Mapping[str, str] | None] = {"comment": None, "problem": None}
        for name, text in (("comment", answer.comment), ("problem", answer.problem_text)):
            if text:
                try:
                    sealed[name] = await self.vault.encrypt(conn, unit.subject_id, text)
                except SubjectErased:
                    sealed[name] = None  # forgotten: the coded answers stay, not the words
        try:
            return wave.record_attempt(
                unit_id,
                SurveyMode.SMS.value,
                answer.outcome,
                answer.answers,
                sealed["comment"],
                max(now, unit.attempts[-1].occurred_at if unit.attempts else now),
                now,
                # The person answers when they like; quiet hours bind only our contacting.
                quiet_hours=False,
                opted_out=await read_model.is_opted_out(conn, unit.subject_id),
                problem_text=sealed["problem"],
                raised_by=PAGE_ACTOR,
                area_type=area_type_of(wave.bureau),
            )
        except DomainError:
            # Answered meanwhile, fieldwork closed, opted out since: the link is spent.
            raise _Refused(survey_tokens.State.EXPIRED) from None


class _RollBack(Exception):
    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class _Refused(Exception):
    def __init__(self, state: survey_tokens.State) -> None:
        super().__init__(state.value)
        self.state = state
