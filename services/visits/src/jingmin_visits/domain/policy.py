"""Per-bureau callback policy as data; defaults from DOMAIN.md §3.2 and §5.

Which resolutions trigger a callback, by which mode and within which window; which case
categories suppress it; and the quiet hours in the bureau's own time zone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jingmin_visits.domain.vocabulary import Mode, Purpose, SuppressionReason, Trigger

HOUR = 3600
DAY = 24 * HOUR
MAX_SECONDS = 365 * DAY
_KINDS = ("alarm", "help", "consultation", "service", "petition", "opinion", "tip")


@dataclass(frozen=True)
class TriggerRule:
    """One row of the trigger table: the first rule that matches a resolution wins.

    Empty `kinds` or `channels` match any value. `purpose` is what the call is for (the
    script): a survey, a notification (告知) or prevention advice.
    """

    trigger: str
    mode: str
    window_seconds: int
    kinds: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    purpose: str = Purpose.SURVEY

    def matches(self, trigger: str, kind: str, channel: str) -> bool:
        return (
            self.trigger == trigger
            and (not self.kinds or kind in self.kinds)
            and (not self.channels or channel in self.channels)
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TriggerRule:
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown trigger rule fields: {', '.join(sorted(unknown))}")
        try:
            rule = cls(
                trigger=Trigger(raw["trigger"]).value,
                mode=Mode(raw["mode"]).value,
                window_seconds=raw["window_seconds"],
                kinds=tuple(raw.get("kinds", ())),
                channels=tuple(raw.get("channels", ())),
                purpose=Purpose(raw.get("purpose", Purpose.SURVEY)).value,
            )
        except KeyError as exc:
            raise ValueError(f"a trigger rule needs {exc.args[0]}") from None
        if not isinstance(rule.window_seconds, int) or not 1 <= rule.window_seconds <= MAX_SECONDS:
            raise ValueError(f"window_seconds must be whole seconds from 1 to {MAX_SECONDS}")
        if not all(isinstance(k, str) for k in (*rule.kinds, *rule.channels)):
            raise ValueError("kinds and channels must be lists of codes")
        return rule


def _rules() -> tuple[TriggerRule, ...]:
    return (
        # SMS satisfaction survey within 2 h of closing a 110 case (Nanjing 110 practice).
        TriggerRule(
            Trigger.CASE_RESOLVED,
            Mode.SMS,
            2 * HOUR,
            kinds=("alarm", "help"),
            channels=("call_110",),
        ),
        TriggerRule(Trigger.PETITION_RESOLVED, Mode.PHONE, 3 * DAY, kinds=("petition",)),
        # Phone callback within 3 days of resolution otherwise.
        TriggerRule(
            Trigger.CASE_RESOLVED,
            Mode.PHONE,
            3 * DAY,
            kinds=tuple(k for k in _KINDS if k != "petition"),
        ),
        # 投诉办结回访: the complainant is asked whether the answer satisfied them.
        TriggerRule(Trigger.COMPLAINT_CONCLUDED, Mode.PHONE, 3 * DAY),
        # After a 不满意 was put right (report-back within 5 working days), ask again.
        TriggerRule(Trigger.SERVICE_RECOVERY, Mode.PHONE, 3 * DAY),
        # 执法回访: a phone call within 7 days of an enforcement decision (行政处罚, 行政强制,
        # 不予处罚), asking how the person found the way the police enforced the law.
        TriggerRule(Trigger.ENFORCEMENT_DECISION, Mode.PHONE, 7 * DAY),
        # 刑事被侵害人回访告知: within 7 days of the case being classified as a crime with a
        # victim, the victim is told how their case stands; a notification, not only a survey.
        TriggerRule(Trigger.CRIME_VICTIM, Mode.PHONE, 7 * DAY, purpose=Purpose.NOTIFICATION),
        # 可防性案件回访: within 3 days, prevention advice for a preventable case (theft,
        # fraud...), as §5's phone callback.
        TriggerRule(
            Trigger.PREVENTABLE_CASE, Mode.PHONE, 3 * DAY, purpose=Purpose.PREVENTION_ADVICE
        ),
    )


def _suppress() -> dict[str, str]:
    return {r.value: r.value for r in SuppressionReason if r != SuppressionReason.OPTED_OUT}


def _parse_clock(value: str) -> time:
    try:
        parsed = time.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a clock time like 20:00") from None
    if parsed.second or parsed.microsecond or parsed.tzinfo:
        raise ValueError(f"{value!r}: quiet hours are whole minutes, local time")
    return parsed


@dataclass(frozen=True)
class CallbackPolicy:
    triggers: tuple[TriggerRule, ...] = field(default_factory=_rules)
    # Case category code (or its first dotted segment) -> suppression reason.
    suppress_categories: dict[str, str] = field(default_factory=_suppress)
    timezone: str = "Asia/Shanghai"
    quiet_start: str = "20:00"
    quiet_end: str = "08:00"
    # A callback not done this long after its due time expires (recorded as a fact).
    expire_after_seconds: int = 7 * DAY
    # Whether a commander or supervisor may learn who gave a survey answer (DOMAIN §6):
    # off unless the bureau turns it on; every request is an audited event either way.
    survey_answer_linking: bool = False

    # ---- decisions ---------------------------------------------------------------------

    def trigger_for(self, kind: str) -> str:
        """Which trigger a resolved intake case is: petitions have their own."""
        return Trigger.PETITION_RESOLVED if kind == "petition" else Trigger.CASE_RESOLVED

    def rule_for(self, trigger: str, kind: str, channel: str) -> TriggerRule | None:
        return next((r for r in self.triggers if r.matches(trigger, kind, channel)), None)

    def suppression_for(self, category: str | None) -> str | None:
        if not category:
            return None
        head = category.split(".", 1)[0]
        return self.suppress_categories.get(category) or self.suppress_categories.get(head)

    def out_of_quiet_hours(self, due: datetime) -> datetime:
        """`due`, or the end of the quiet hours it falls in (shifted, never dropped)."""
        zone = ZoneInfo(self.timezone)
        start, end = _parse_clock(self.quiet_start), _parse_clock(self.quiet_end)
        local = due.astimezone(zone)
        clock = local.time().replace(tzinfo=None)
        if start == end:
            return due
        if start > end:  # across midnight, e.g. 20:00-08:00
            if clock >= start:
                day = local.date() + timedelta(days=1)
            elif clock < end:
                day = local.date()
            else:
                return due
        elif start <= clock < end:
            day = local.date()
        else:
            return due
        return datetime.combine(day, end, tzinfo=zone).astimezone(due.tzinfo)

    # ---- storage -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["triggers"] = [
            {**asdict(r), "kinds": list(r.kinds), "channels": list(r.channels)}
            for r in self.triggers
        ]
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CallbackPolicy:
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown policy fields: {', '.join(sorted(unknown))}")
        values = dict(raw)
        if "triggers" in values:
            if not isinstance(values["triggers"], list):
                raise ValueError("triggers must be a list of rules")
            values["triggers"] = tuple(TriggerRule.from_dict(dict(r)) for r in values["triggers"])
        if "suppress_categories" in values:
            table = values["suppress_categories"]
            if not isinstance(table, dict):
                raise ValueError("suppress_categories maps category codes to reasons")
            try:
                values["suppress_categories"] = {
                    str(k): SuppressionReason(v).value for k, v in table.items()
                }
            except ValueError as exc:
                raise ValueError(f"suppress_categories: {exc}") from None
        policy = cls(**values)
        try:
            ZoneInfo(policy.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"unknown time zone {policy.timezone!r}") from None
        _parse_clock(policy.quiet_start)
        _parse_clock(policy.quiet_end)
        if not isinstance(policy.survey_answer_linking, bool):
            raise ValueError("survey_answer_linking is true or false")
        exp = policy.expire_after_seconds
        if not isinstance(exp, int) or not 1 <= exp <= MAX_SECONDS:
            raise ValueError(f"expire_after_seconds must be whole seconds from 1 to {MAX_SECONDS}")
        return policy
