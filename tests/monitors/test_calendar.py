"""Business calendars and the freshness rules that use them, on SQLite through the suite runner."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from airflow_opsflow.checks.loader import CheckSpecError, load_suite
from airflow_opsflow.core.calendar import BusinessCalendar, CalendarEvent, events_on
from airflow_opsflow.core.results import CheckResult
from airflow_opsflow.flows.check_suite import run_suite
from airflow_opsflow.monitors import buckets

BERLIN = ZoneInfo("Europe/Berlin")
CAL = {"timezone": "Europe/Berlin", "business_days": ["mon", "tue", "wed", "thu", "fri"],
       "holidays": ["2026-12-25"]}


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


def freshness(newest: datetime, now: datetime, **rule: object) -> CheckResult:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE loads (loaded_at TIMESTAMP)")
    # Stored as naive UTC text, as most pipelines write it.
    conn.execute("INSERT INTO loads VALUES (?)", (newest.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" "),))
    conn.commit()
    suite = load_suite({"table": "loads", "checks": [{"kind": "freshness", "column": "loaded_at", **rule}]})
    (result,) = run_suite(conn, suite, "sqlite", now=now)
    return result


def test_deadline_on_business_days() -> None:
    rule = {"deadline": "06:00", "calendar": CAL}
    monday_7am = berlin(2026, 11, 23, 7)
    assert freshness(berlin(2026, 11, 23, 5, 30), monday_7am, **rule).status == "pass"
    late = freshness(berlin(2026, 11, 20, 22), monday_7am, **rule)
    assert late.status == "fail"
    assert "no data for Mon 2026-11-23 by its 06:00 Europe/Berlin deadline" in late.message
    assert "Fri 2026-11-20 22:00" in late.message
    assert late.expected == "that day's data by 06:00 on business days (Mon-Fri Europe/Berlin, 1 holiday(s))"
    # Before Monday's deadline, and all weekend, Friday's deadline is the one that applies.
    assert freshness(berlin(2026, 11, 20, 22), berlin(2026, 11, 23, 5), **rule).status == "pass"
    assert freshness(berlin(2026, 11, 20, 22), berlin(2026, 11, 22, 12), **rule).status == "pass"
    assert freshness(berlin(2026, 11, 19, 22), berlin(2026, 11, 22, 12), **rule).status == "fail"


def test_holidays_are_not_business_days() -> None:
    rule = {"deadline": "06:00", "calendar": CAL}
    christmas = berlin(2026, 12, 25, 12)  # a Friday, but a holiday: Thursday's data is what is due
    assert freshness(berlin(2026, 12, 24, 1), christmas, **rule).status == "pass"
    assert freshness(berlin(2026, 12, 23, 23), christmas, **rule).status == "fail"


def test_public_holidays_of_a_country_and_its_subdivision() -> None:
    berlin_cal = BusinessCalendar("Europe/Berlin", country="DE", subdivision="BE",
                                  holidays=frozenset({date(2026, 12, 24)}))
    bavaria = BusinessCalendar("Europe/Berlin", country="DE", subdivision="BY")
    assert not berlin_cal.is_business_day(date(2026, 5, 1))  # Labour Day, a Friday
    assert BusinessCalendar("Europe/Berlin").is_business_day(date(2026, 5, 1))  # without a country: a Friday
    assert not berlin_cal.is_business_day(date(2027, 3, 8))  # International Women's Day: Berlin only
    assert bavaria.is_business_day(date(2027, 3, 8))
    assert not bavaria.is_business_day(date(2027, 1, 6))  # Epiphany: Bavaria, not Berlin
    assert berlin_cal.is_business_day(date(2027, 1, 6))
    assert not berlin_cal.is_business_day(date(2026, 12, 24))  # an explicit day off on top of the country's
    assert berlin_cal.previous_business_day(date(2026, 12, 28)) == date(2026, 12, 23)  # 24th off, 25/26 public
    # Through a spec: Good Friday 2027 (26 March) asks for nothing new; Thursday's data is what is due.
    rule = {"deadline": "06:00", "calendar": {"timezone": "Europe/Berlin", "country": "DE", "subdivision": "BE"}}
    good_friday = berlin(2027, 3, 26, 12)
    assert freshness(berlin(2027, 3, 25, 5), good_friday, **rule).status == "pass"
    late = freshness(berlin(2027, 3, 24, 23), good_friday, **rule)
    assert late.status == "fail" and "DE-BE public holidays" in (late.expected or "")


def test_previous_business_day_loads() -> None:
    rule = {"deadline": "06:00", "expect": "previous_business_day", "calendar": CAL}
    monday_7am = berlin(2026, 11, 23, 7)
    assert freshness(berlin(2026, 11, 20, 10), monday_7am, **rule).status == "pass"
    stale = freshness(berlin(2026, 11, 19, 23), monday_7am, **rule)
    assert stale.status == "fail" and "no data for Fri 2026-11-20" in stale.message


def test_max_age_in_business_time() -> None:
    friday_5pm, monday_9am = berlin(2026, 11, 20, 17), berlin(2026, 11, 23, 9)
    plain = freshness(friday_5pm, monday_9am, max_age="20h")
    assert plain.status == "fail" and "2d 16h" in plain.message  # 64 hours of wall-clock time
    business = freshness(friday_5pm, monday_9am, max_age="20h", calendar=CAL)
    assert business.status == "pass" and business.observed["business_age_s"] == 16 * 3600
    both = freshness(friday_5pm, monday_9am, max_age="2h", deadline="06:00", calendar=CAL)
    assert both.status == "fail" and "business time" in both.message and "no data for Mon" in both.message


def test_business_time_is_exact_across_dst() -> None:
    every_day = BusinessCalendar("Europe/Berlin", frozenset(range(7)))
    # The night of 2026-03-29 has 23 hours in Berlin.
    assert every_day.business_time(berlin(2026, 3, 28), berlin(2026, 3, 30)).total_seconds() == 47 * 3600
    weekdays = BusinessCalendar("Europe/Berlin", holidays=frozenset({date(2026, 12, 25)}))
    assert weekdays.last_deadline(berlin(2026, 12, 28, 5), time(6))[0] == date(2026, 12, 24)
    assert weekdays.previous_business_day(date(2026, 12, 28)) == date(2026, 12, 24)


def test_day_buckets_follow_the_zone() -> None:
    # Berlin's 2026-03-29 is 23 hours long; 2026-10-25 is 25 hours long.
    short = buckets.floor(berlin(2026, 3, 29, 12), "day", "Europe/Berlin")
    assert buckets.step(short, "day", "Europe/Berlin").timestamp() - short.timestamp() == 23 * 3600
    long = buckets.floor(berlin(2026, 10, 25, 12), "day", "Europe/Berlin")
    assert buckets.step(long, "day", "Europe/Berlin").timestamp() - long.timestamp() == 25 * 3600
    assert buckets.latest_complete(berlin(2026, 11, 21, 0, 30), "day", "Europe/Berlin") == berlin(2026, 11, 20)
    assert buckets.step(berlin(2026, 1, 1), "month", "Europe/Berlin", -2) == berlin(2025, 11, 1)
    assert buckets.floor(berlin(2026, 11, 22, 9), "week", "Europe/Berlin") == berlin(2026, 11, 16)
    assert buckets.sql_literal(berlin(2026, 11, 20), "UTC", "postgres") == "2026-11-19 23:00:00+00:00"
    assert buckets.sql_literal(berlin(2026, 11, 20), "UTC", "sqlite") == "2026-11-19 23:00:00"


@pytest.mark.parametrize(("rule", "message"), [
    ({}, "give max_age"),
    ({"deadline": "25:00"}, "deadline"),
    ({"deadline": "06:00", "calendar": {"timezone": "Europe/Berlinn"}}, "unknown time zone 'Europe/Berlinn'"),
    ({"deadline": "06:00", "calendar": {"business_days": ["mon", "funday"]}}, "unknown weekday 'funday'"),
    ({"max_age": "2h", "expect": "previous_business_day"}, "give deadline too"),
    ({"deadline": "06:00", "calendar": {"country": "XX"}}, "country 'XX' is not known"),
    ({"deadline": "06:00", "calendar": {"country": "DE", "subdivision": "ZZ"}}, "DE has no subdivision 'ZZ'"),
    ({"deadline": "06:00", "calendar": {"subdivision": "BE"}}, "'subdivision' needs 'country'"),
])
def test_bad_calendars_name_the_field(rule: dict[str, object], message: str) -> None:
    with pytest.raises(CheckSpecError, match=message) as e:
        load_suite({"table": "loads", "checks": [{"kind": "freshness", "name": "loads_fresh",
                                                 "column": "loaded_at", **rule}]})
    assert "check 'loads_fresh' (freshness)" in str(e.value)


def test_recurring_events_fall_on_the_right_days() -> None:
    berlin = BusinessCalendar("Europe/Berlin", country="DE", subdivision="BE")
    events = [CalendarEvent("holiday", "holiday"), CalendarEvent("month_end", "month_end"),
              CalendarEvent("last_business_day", "last_business_day"),
              CalendarEvent("first_business_day", "first_business_day"),
              CalendarEvent("payday", "day_of_month", day=31),
              CalendarEvent("sale", "dates", dates=frozenset({date(2026, 11, 27)}))]

    def on(day: date) -> list[str]:
        return sorted(events_on(day, berlin, events))

    assert on(date(2026, 1, 1)) == ["holiday"]  # New Year, a Thursday
    assert on(date(2026, 1, 2)) == ["first_business_day"]  # the day after
    assert on(date(2026, 3, 9)) == []  # 8 March (Berlin's own holiday) was a Sunday: not a business weekday
    assert on(date(2027, 3, 8)) == ["holiday"]  # a Monday in 2027
    assert on(date(2026, 2, 27)) == ["last_business_day"]  # February ends on a Saturday
    assert on(date(2026, 2, 28)) == ["month_end", "payday"]  # payday 31 falls on the month's last day
    assert on(date(2028, 2, 29)) == ["last_business_day", "month_end", "payday"]  # a leap day, a Tuesday
    assert on(date(2026, 12, 31)) == ["last_business_day", "month_end", "payday"]  # year end, a Thursday
    assert on(date(2026, 12, 24)) == []  # Christmas Eve is no public holiday in Germany
    assert on(date(2027, 1, 4)) == ["first_business_day"]  # 1 January 2027 is a Friday (holiday), then a weekend
    assert on(date(2026, 11, 27)) == ["sale"]
    retail = BusinessCalendar("Europe/Paris", business_days=frozenset(range(7)), country="FR")
    assert events_on(date(2026, 7, 14), retail, events) == {"holiday"}  # Bastille Day, a Tuesday
    assert events_on(date(2026, 11, 1), retail, events) == {"holiday"}  # a Sunday, but shops open on Sundays
