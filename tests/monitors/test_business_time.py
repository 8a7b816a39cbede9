"""Business time for freshness ``max_age``: whole business days, or only the calendar's business hours;
exact across DST switches. Through the suite runner on SQLite, as a DAG's check runs it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from airflow_opsflow.checks.loader import CheckSpecError, load_suite
from airflow_opsflow.core.results import CheckResult
from airflow_opsflow.flows.check_suite import run_suite

TOKYO, BERLIN = ZoneInfo("Asia/Tokyo"), ZoneInfo("Europe/Berlin")
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
EVERY_DAY = [*WEEKDAYS, "sat", "sun"]


def freshness(newest: datetime, now: datetime, **calendar: object) -> CheckResult:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE loads (loaded_at TIMESTAMP)")
    conn.execute("INSERT INTO loads VALUES (?)", (newest.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" "),))
    conn.commit()
    suite = load_suite({"table": "loads", "checks": [{"kind": "freshness", "name": "fresh", "column": "loaded_at",
                                                     "max_age": "12h", "calendar": calendar}]})
    (result,) = run_suite(conn, suite, "sqlite", now=now)
    return result


def hours(result: CheckResult) -> float:
    return float(result.observed["business_age_s"]) / 3600


def test_friday_evening_to_monday_morning_in_tokyo() -> None:
    friday_6pm = datetime(2026, 12, 4, 18, tzinfo=TOKYO)
    monday = datetime(2026, 12, 7, 9, 16, tzinfo=TOKYO)
    # Business hours: only Monday's first 16 minutes count.
    office = freshness(friday_6pm, monday, timezone="Asia/Tokyo", business_days=WEEKDAYS,
                       business_hours="09:00-18:00")
    assert office.status == "pass" and office.observed["business_age_s"] == 16 * 60
    assert office.expected == "newest row at most 12h old in business time (Mon-Fri 09:00-18:00 Asia/Tokyo)"
    # Business days only: the weekend is skipped, Friday's last 6 hours and Monday's first 9h16m count.
    days = freshness(friday_6pm, monday, timezone="Asia/Tokyo", business_days=WEEKDAYS)
    assert days.status == "fail" and hours(days) == 15 + 16 / 60
    assert "newest row is 15h 16m of business time old (max 12h)" in days.message
    # The documented examples.
    assert hours(freshness(friday_6pm, datetime(2026, 12, 7, 9, tzinfo=TOKYO), timezone="Asia/Tokyo")) == 15
    assert hours(freshness(friday_6pm, datetime(2026, 12, 7, 9, tzinfo=TOKYO), timezone="Asia/Tokyo",
                           business_hours="09:00-18:00")) == 0
    assert hours(freshness(datetime(2026, 12, 4, 17, tzinfo=TOKYO), datetime(2026, 12, 7, 10, tzinfo=TOKYO),
                           timezone="Asia/Tokyo", business_hours="09:00-18:00")) == 2


def test_business_hours_across_berlin_dst_switches() -> None:
    # 2026-03-29: 02:00 becomes 03:00, so 01:00-05:00 holds 3 hours; 2026-10-25: 03:00 becomes 02:00, 5 hours.
    night = {"timezone": "Europe/Berlin", "business_days": EVERY_DAY, "business_hours": "01:00-05:00"}
    spring = freshness(datetime(2026, 3, 28, 12, tzinfo=BERLIN), datetime(2026, 3, 30, 0, tzinfo=BERLIN), **night)
    assert hours(spring) == 3 + 0  # Saturday's window had passed at noon; Sunday's short one counts
    autumn = freshness(datetime(2026, 10, 24, 12, tzinfo=BERLIN), datetime(2026, 10, 26, 0, tzinfo=BERLIN), **night)
    assert hours(autumn) == 5
    # An office week across the spring switch: Friday 17:00 to Monday 10:00 is 2 business hours (1 + 1).
    office = freshness(datetime(2026, 3, 27, 17, tzinfo=BERLIN), datetime(2026, 3, 30, 10, tzinfo=BERLIN),
                       timezone="Europe/Berlin", business_hours="09:00-18:00")
    assert hours(office) == 2 and office.status == "pass"
    # Whole business days across the switch: the short Sunday is not a business day, so 7 + 10 hours.
    days = freshness(datetime(2026, 3, 27, 17, tzinfo=BERLIN), datetime(2026, 3, 30, 10, tzinfo=BERLIN),
                     timezone="Europe/Berlin")
    assert hours(days) == 17 and days.status == "fail"
    # A whole-day calendar counts the 23-hour Sunday as 23 hours.
    everyday = freshness(datetime(2026, 3, 28, 12, tzinfo=BERLIN), datetime(2026, 3, 30, 0, tzinfo=BERLIN),
                         timezone="Europe/Berlin", business_days=EVERY_DAY)
    assert hours(everyday) == 12 + 23


@pytest.mark.parametrize("bad", ["18:00-09:00", "9-18", "25:00-26:00", "09:00-24:30", "09:00"])
def test_bad_business_hours_fail_at_parse_time(bad: str) -> None:
    with pytest.raises(CheckSpecError, match="business_hours") as e:
        load_suite({"table": "loads", "checks": [{"kind": "freshness", "name": "fresh", "column": "loaded_at",
                                                 "max_age": "2h", "calendar": {"business_hours": bad}}]})
    assert "check 'fresh' (freshness)" in str(e.value)
