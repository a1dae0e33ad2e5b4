"""Working days with Chinese public holidays and make-up working days (调休), per bureau."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar


class WorkCalendar:
    """`chinese_calendar` for the years it knows; a bureau's own lists first.

    The library ships the State Council's holiday notice year by year; for a year it does
    not know yet, a bureau lists that year's holidays and make-up days in its policy
    (extra_holidays / extra_workdays), and only what neither knows falls back to
    Monday-Friday.
    """

    def __init__(
        self,
        timezone: str = "Asia/Shanghai",
        extra_holidays: Collection[date] = (),
        extra_workdays: Collection[date] = (),
    ) -> None:
        self.zone = ZoneInfo(timezone)
        self.extra_holidays = frozenset(extra_holidays)
        self.extra_workdays = frozenset(extra_workdays)

    def is_workday(self, day: date) -> bool:
        if day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            return day.weekday() < 5

    def knows(self, day: date) -> bool:
        """Whether holidays of `day`'s year are known (else only weekends are skipped)."""
        try:
            chinese_calendar.is_workday(day)
        except NotImplementedError:
            return any(d.year == day.year for d in self.extra_holidays)
        return True

    def end_of(self, day: date) -> datetime:
        """The last second of `day`, local time: "within N days" means by the end of day N."""
        return datetime.combine(day, time(23, 59, 59), self.zone)

    def local_date(self, t: datetime) -> date:
        return t.astimezone(self.zone).date()

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The end of the `days`-th working day after the day of `start`."""
        day = self.local_date(start)
        counted = 0
        while counted < days:
            day += timedelta(days=1)
            if self.is_workday(day):
                counted += 1
        return self.end_of(day)

    def add_days(self, start: datetime, days: int) -> datetime:
        """The end of the `days`-th calendar day after the day of `start` (信访 "N日内")."""
        return self.end_of(self.local_date(start) + timedelta(days=days))
