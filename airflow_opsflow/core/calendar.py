"""A business calendar: which days (and, optionally, which hours of them) count, in which time zone, for
freshness rules such as "today's data by 06:00 Europe/Berlin on business days" or "no older than 2
business hours", and the recurring events (holidays, month end, billing days) metric checks learn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any, Literal
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SEARCH_DAYS = 400  # how far back a deadline is looked for (a calendar with no business day: an error)


@dataclass(frozen=True)
class BusinessCalendar:
    """Business days in a time zone.

    :param timezone: an IANA zone (``Europe/Berlin``); days start at local midnight.
    :param business_days: weekday numbers (Monday = 0) that are business days (default Monday-Friday).
    :param holidays: dates that are not business days although their weekday is (beside the country's).
    :param hours: the business hours of a business day, ``(start, end)`` in local time (``end`` None:
        midnight at the day's end); None: the whole day counts.
    :param country: public holidays of this country (ISO 3166 code, ``DE``), from the ``holidays`` library.
    :param subdivision: and of this subdivision (``BE`` for Berlin): regional holidays differ.
    """

    timezone: str = "UTC"
    business_days: frozenset[int] = frozenset(range(5))
    holidays: frozenset[date] = field(default_factory=frozenset)
    hours: tuple[time, time | None] | None = None
    country: str | None = None
    subdivision: str | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def _public(self) -> Any:
        """The country's public holidays (the library fills in each year when it is first asked about)."""
        if self.country is None:
            return ()
        import holidays  # imported on first use: DAG files parse without it

        return holidays.country_holidays(self.country, subdiv=self.subdivision)

    def is_business_day(self, day: date) -> bool:
        return day.weekday() in self.business_days and day not in self.holidays and day not in self._public

    def start_of(self, day: date) -> datetime:
        """Local midnight of ``day`` (aware)."""
        return datetime.combine(day, time(0), tzinfo=self.zone)

    def previous_business_day(self, day: date) -> date:
        for back in range(1, _SEARCH_DAYS):
            candidate = day - timedelta(days=back)
            if self.is_business_day(candidate):
                return candidate
        raise ValueError("the calendar has no business day in the last 400 days")

    def last_deadline(self, now: datetime, deadline: time) -> tuple[date, datetime]:
        """The newest business day whose ``deadline`` (local time) has passed by ``now``, and that instant."""
        today = now.astimezone(self.zone).date()
        for back in range(_SEARCH_DAYS):
            day = today - timedelta(days=back)
            if not self.is_business_day(day):
                continue
            due = datetime.combine(day, deadline, tzinfo=self.zone)
            if due <= now:
                return day, due
        raise ValueError("the calendar has no business day in the last 400 days")

    def business_time(self, since: datetime, until: datetime) -> timedelta:
        """How much of ``[since, until)`` falls in business time: the business hours of business days, or
        their whole (local, DST-exact) days without ``hours``."""
        since, until = since.astimezone(UTC), until.astimezone(UTC)
        if until <= since:
            return timedelta(0)
        total = timedelta(0)
        day = since.astimezone(self.zone).date()
        last = until.astimezone(self.zone).date()
        if (last - day).days > 20 * 366:  # decades stale: the exact figure no longer matters
            day = last - timedelta(days=20 * 366)
        while day <= last:
            if self.is_business_day(day):
                opens, closes = self.open_hours(day)
                lo, hi = max(since, opens), min(until, closes)
                if hi > lo:  # both in UTC: aware datetimes of one zone would subtract as wall-clock time
                    total += hi - lo
            day += timedelta(days=1)
        return total

    def open_hours(self, day: date) -> tuple[datetime, datetime]:
        """When business time starts and ends on ``day`` (in UTC)."""
        start, end = self.hours or (time(0), None)
        opens = datetime.combine(day, start, tzinfo=self.zone)
        next_day = self.start_of(day + timedelta(days=1))
        closes = next_day if end is None else datetime.combine(day, end, tzinfo=self.zone)
        return opens.astimezone(UTC), closes.astimezone(UTC)

    def describe(self) -> str:
        days = [WEEKDAYS[d] for d in sorted(self.business_days)]
        text = "Mon-Fri" if days == list(WEEKDAYS[:5]) else ",".join(d.capitalize() for d in days)
        if self.hours:
            start, end = self.hours
            text += f" {start:%H:%M}-" + ("24:00" if end is None else f"{end:%H:%M}")
        holidays = f", {len(self.holidays)} holiday(s)" if self.holidays else ""
        if self.country:
            place = f"{self.country}-{self.subdivision}" if self.subdivision else self.country
            holidays = f", {place} public holidays" + holidays.replace(", ", " and ", 1)
        return f"{text} {self.timezone}{holidays}"


EventRule = Literal["holiday", "month_end", "last_business_day", "first_business_day", "day_of_month", "dates"]
NAMED_RULES = ("month_end", "last_business_day", "first_business_day")


@dataclass(frozen=True)
class CalendarEvent:
    """A recurring business day a metric behaves differently on (billing day, payday, a campaign).

    :param name: how verdicts and history name it (``month_end``, ``payday``, ``black_friday``).
    :param rule: ``holiday`` (a public or listed holiday on a weekday that is otherwise a business day),
        ``month_end`` (the month's last calendar day), ``last_business_day``/``first_business_day`` (of the
        month, by the calendar), ``day_of_month`` (``day``; the month's last day when it is shorter) or
        ``dates`` (the listed ones).
    """

    name: str
    rule: EventRule
    day: int | None = None
    dates: frozenset[date] = field(default_factory=frozenset)

    def on(self, day: date, calendar: BusinessCalendar) -> bool:
        if self.rule == "dates":
            return day in self.dates
        if self.rule == "holiday":
            return day.weekday() in calendar.business_days and not calendar.is_business_day(day)
        last = _month_end(day)
        if self.rule == "month_end":
            return day == last
        if self.rule == "day_of_month":
            assert self.day is not None
            return day.day == min(self.day, last.day)
        if self.rule == "first_business_day":
            first = day.replace(day=1)
            while not calendar.is_business_day(first) and first < last:
                first += timedelta(days=1)
            return day == first
        while not calendar.is_business_day(last) and last.day > 1:  # last_business_day
            last -= timedelta(days=1)
        return day == last


def events_on(day: date, calendar: BusinessCalendar, events: Sequence[CalendarEvent]) -> frozenset[str]:
    """The names of the events falling on ``day`` (a local date)."""
    return frozenset(e.name for e in events if e.on(day, calendar))


def _month_end(day: date) -> date:
    following = day.replace(day=28) + timedelta(days=4)
    return following - timedelta(days=following.day)
