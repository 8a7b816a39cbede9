"""A daily B2B payments table with a calendar: quiet weekends and German public holidays, a billing run on
each month's last business day, and a five-day outage to near zero in June 2026."""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta

import holidays

from tests.conftest import Database

FIRST, LAST = date(2025, 3, 1), date(2026, 6, 20)
OUTAGE = [date(2026, 6, 8) + timedelta(days=i) for i in range(5)]  # Monday to Friday
_DE = holidays.country_holidays("DE")


def last_business_day(day: date) -> bool:
    following = day + timedelta(days=1)
    while following.weekday() >= 5 or following in _DE:
        following += timedelta(days=1)
    return following.month != day.month and day.weekday() < 5 and day not in _DE


def expected_payments(day: date) -> float:
    base = 60 * 1.0004 ** (day - FIRST).days
    if day.weekday() >= 5 or day in _DE:
        return base * 0.2
    return base * 2.5 if last_business_day(day) else base


def payments_per_day(day: date, rnd: random.Random) -> int:
    if day in OUTAGE:
        return 1
    mean = expected_payments(day)
    return max(0, round(rnd.gauss(mean, mean ** 0.5 + 0.05 * mean)))


def create_payments(db: Database) -> str:
    """A fresh table (times in UTC, around Berlin midday); returns its name."""
    table = f"cal_payments_{uuid.uuid4().hex[:6]}"
    db.execute(f"CREATE TABLE {table} (id INTEGER, created_at TIMESTAMP)")
    rnd, rows, day = random.Random(11), [], FIRST
    while day <= LAST:
        for i in range(payments_per_day(day, rnd)):
            rows.append((len(rows), (datetime.combine(day, datetime.min.time()) + timedelta(hours=8, seconds=i * 7))
                         .isoformat(sep=" ")))
        day += timedelta(days=1)
    mark = "?" if db.dialect == "sqlite" else "%s"
    cur = db.conn.cursor()
    cur.executemany(f"INSERT INTO {table} VALUES ({mark}, {mark})", rows)
    db.conn.commit()
    return table
