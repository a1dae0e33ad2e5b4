"""Per-bureau complaint and supervision deadlines; defaults from DOMAIN.md §5."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jingmin_complaints.domain.calendar import WorkCalendar

MAX_DAYS = 366


@dataclass(frozen=True)
class ComplaintPolicy:
    """Days allowed for each promise; every figure is the bureau's to change."""

    acknowledgement_days: int = 15  # 信访工作条例: acceptance decision
    conclusion_days: int = 60  # from acceptance
    max_extension_days: int = 30  # one extension, at most this long
    # 信访 counts calendar days ("calendar"); a bureau may count "working" days instead.
    counting: str = "calendar"
    dispute_days: int = 30  # how long after closure the complainant may dispute it
    recovery_working_days: int = 5  # Chongqing Yuzhong 110 rule: rectify and report back
    tracking_working_days: int = 10  # 跟踪督办 default when the issuer names no deadline
    rectification_working_days: int = 20  # 限期整改 default
    escalation_working_days: int = 3  # new deadline after an overdue order moves up a level
    sweep_grace_seconds: int = 60
    timezone: str = "Asia/Shanghai"
    extra_holidays: tuple[str, ...] = ()  # ISO dates, for years chinese-calendar lacks
    extra_workdays: tuple[str, ...] = ()
    # Station code -> name, offered on the online complaint form.
    units: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ComplaintPolicy:
        known = set(cls.__dataclass_fields__)
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown policy fields: {', '.join(sorted(unknown))}")
        values = dict(raw)
        for key in ("extra_holidays", "extra_workdays"):
            if key in values:
                values[key] = tuple(values[key])
                for value in values[key]:
                    date.fromisoformat(value)  # ValueError names the bad date
        for key, value in values.items():
            if key.endswith("_days") and (not isinstance(value, int) or not 1 <= value <= MAX_DAYS):
                raise ValueError(f"{key} must be a whole number of days from 1 to {MAX_DAYS}")
        if values.get("counting", "calendar") not in ("calendar", "working"):
            raise ValueError('counting must be "calendar" or "working"')
        grace = values.get("sweep_grace_seconds", 60)
        if not isinstance(grace, int) or not 0 <= grace <= 3600:
            raise ValueError("sweep_grace_seconds must be from 0 to 3600")
        try:
            ZoneInfo(values.get("timezone", "Asia/Shanghai"))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {values.get('timezone')!r}") from exc
        units = values.get("units", {})
        if not isinstance(units, dict) or any(
            not (isinstance(k, str) and len(k) == 9 and k.isascii() and k.isdigit())
            or not isinstance(v, str)
            for k, v in units.items()
        ):
            raise ValueError("units maps 9-digit station codes to names")
        return cls(**values)

    @property
    def calendar(self) -> WorkCalendar:
        return WorkCalendar(
            self.timezone,
            [date.fromisoformat(d) for d in self.extra_holidays],
            [date.fromisoformat(d) for d in self.extra_workdays],
        )

    def _after(self, start: datetime, days: int) -> datetime:
        cal = self.calendar
        if self.counting == "working":
            return cal.add_working_days(start, days)
        return cal.add_days(start, days)

    def acknowledgement_due(self, received_at: datetime) -> datetime:
        return self._after(received_at, self.acknowledgement_days)

    def conclusion_due(self, acknowledged_at: datetime) -> datetime:
        return self._after(acknowledged_at, self.conclusion_days)

    def latest_extension(self, current_due: datetime) -> datetime:
        return self.calendar.add_days(current_due, self.max_extension_days)

    def dispute_until(self, closed_at: datetime) -> datetime:
        return self.calendar.add_days(closed_at, self.dispute_days)

    def recovery_due(self, answered_at: datetime) -> datetime:
        return self.calendar.add_working_days(answered_at, self.recovery_working_days)

    def order_due(self, order_type: str, issued_at: datetime) -> datetime:
        days = (
            self.rectification_working_days
            if order_type == "rectification"
            else self.recovery_working_days
            if order_type == "service_recovery"
            else self.tracking_working_days
        )
        return self.calendar.add_working_days(issued_at, days)

    def escalated_due(self, escalated_at: datetime) -> datetime:
        return self.calendar.add_working_days(escalated_at, self.escalation_working_days)
