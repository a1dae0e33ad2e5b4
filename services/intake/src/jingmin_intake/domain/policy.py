"""Per-bureau deadline policy; defaults from DOMAIN.md §5, every figure overridable."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jingmin_intake.domain.vocabulary import AreaType, Channel, Deadline, Kind, Priority

HOUR = 3600
DAY = 24 * HOUR
MAX_SECONDS = 10 * 365 * DAY  # no promise is longer; larger values overflow date arithmetic

# Channels where the public writes in and waits for the bureau to pick the message up.
WRITTEN_CHANNELS = (Channel.ONLINE, Channel.SOCIAL_MEDIA, Channel.MAILBOX)


def _arrival() -> dict[str, int]:
    return {AreaType.URBAN: 5 * 60, AreaType.SUBURBAN: 10 * 60, AreaType.RURAL: 20 * 60}


def _first_contact() -> dict[str, int]:
    return {Channel.ONLINE: 2 * HOUR, Channel.SOCIAL_MEDIA: 2 * HOUR, Channel.MAILBOX: 2 * HOUR}


def _reply() -> dict[str, int]:
    return {
        Priority.URGENT: 2 * HOUR,
        Priority.UTILITIES: 24 * HOUR,
        Priority.GENERAL: 7 * DAY,
        Priority.COMPLEX: 15 * DAY,
    }


@dataclass(frozen=True)
class DeadlinePolicy:
    """Seconds allowed for each promise. A missing entry means no deadline of that kind."""

    dispatch_seconds: int | None = 60  # NFPA 1225, after answer
    dispatch_kinds: tuple[str, ...] = (Kind.ALARM, Kind.HELP)
    arrival_seconds: dict[str, int] = field(default_factory=_arrival)
    first_contact_seconds: dict[str, int] = field(default_factory=_first_contact)
    petition_acceptance_seconds: int = 15 * DAY  # 信访工作条例
    petition_conclusion_seconds: int = 60 * DAY  # from acceptance
    # A complaint about police conduct is registered here and handed over: its acceptance
    # decision (15 days) and conclusion (60 days) are the complaints service's promises, so
    # intake sets no resolution deadline for it, only that someone owns it (首问负责制) and
    # the person is told where it went. DOMAIN.md gives no figure: one day by default, the
    # stricter channel promise (2 h on written channels) still applying.
    complaint_first_contact_seconds: int | None = DAY
    reply_seconds: dict[str, int] = field(default_factory=_reply)
    # Alarms are closed on scene; a reply deadline would double count the dispatch promise.
    reply_kinds: tuple[str, ...] = (
        Kind.CONSULTATION,
        Kind.SERVICE,
        Kind.OPINION,
        Kind.TIP,
        Kind.HELP,
    )
    # The sweeper only breaches a due time this long past, so a radio report that arrives a
    # few seconds late is not turned into a false breach.
    sweep_grace_seconds: int = 60

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DeadlinePolicy:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown policy fields: {', '.join(sorted(unknown))}")
        values = dict(raw)
        for key in ("dispatch_kinds", "reply_kinds"):
            if key in values:
                values[key] = tuple(values[key])
        for key, value in values.items():
            if key.endswith("_seconds") and value is not None:
                items = value.values() if isinstance(value, dict) else [value]
                floor = 0 if key == "sweep_grace_seconds" else 1
                if any(not isinstance(v, int) or not floor <= v <= MAX_SECONDS for v in items):
                    raise ValueError(f"{key} must hold whole seconds from {floor} to {MAX_SECONDS}")
        return cls(**values)

    def on_receipt(
        self, kind: str, channel: str, priority: str, received_at: datetime
    ) -> dict[str, datetime]:
        due: dict[str, datetime] = {}
        if (
            kind in self.dispatch_kinds
            and self.dispatch_seconds
            and channel in (Channel.CALL_110, Channel.CALL_122, Channel.HOTLINE)
        ):
            due[Deadline.DISPATCH] = received_at + timedelta(seconds=self.dispatch_seconds)
        if kind == Kind.PETITION:
            due[Deadline.FIRST_CONTACT] = received_at + timedelta(
                seconds=self.petition_acceptance_seconds
            )
        elif kind == Kind.COMPLAINT and self.complaint_first_contact_seconds:
            seconds = min(
                self.complaint_first_contact_seconds,
                self.first_contact_seconds.get(channel, MAX_SECONDS),
            )
            due[Deadline.FIRST_CONTACT] = received_at + timedelta(seconds=seconds)
        elif channel in self.first_contact_seconds:
            due[Deadline.FIRST_CONTACT] = received_at + timedelta(
                seconds=self.first_contact_seconds[channel]
            )
        if kind in self.reply_kinds and priority in self.reply_seconds:
            due[Deadline.RESOLUTION] = received_at + timedelta(seconds=self.reply_seconds[priority])
        return due

    def on_acceptance(self, kind: str, accepted_at: datetime) -> dict[str, datetime]:
        if kind == Kind.PETITION:
            return {
                Deadline.RESOLUTION: accepted_at
                + timedelta(seconds=self.petition_conclusion_seconds)
            }
        return {}

    def on_dispatch(self, area_type: str, dispatched_at: datetime) -> dict[str, datetime]:
        seconds = self.arrival_seconds.get(area_type)
        return {Deadline.ARRIVAL: dispatched_at + timedelta(seconds=seconds)} if seconds else {}
