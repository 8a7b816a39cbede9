"""A daily orders table with weekly seasonality and one collapsed day, for metric tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from tests.conftest import Database

START = datetime(2026, 3, 2)  # a Monday
DAYS = 110
DROP_DAY = 105  # orders collapse that day: Monday 2026-06-15


def orders_per_day(day: int) -> int:
    weekday = (START + timedelta(days=day)).weekday()
    base = 60 if weekday >= 5 else 100
    wobble = (day * 37) % 11 - 5  # deterministic noise, -5..+5
    return 20 if day == DROP_DAY else base + wobble


def create_orders(db: Database, days: int = DAYS) -> str:
    """A fresh table of ``days`` days of orders (times in UTC); returns its name."""
    table = f"metric_orders_{uuid.uuid4().hex[:6]}"
    db.execute(f"CREATE TABLE {table} (id INTEGER, created_at TIMESTAMP, country VARCHAR(2), amount NUMERIC(10,2))")
    rows, n = [], 0
    for day in range(days):
        for i in range(orders_per_day(day)):
            at = START + timedelta(days=day, minutes=(i * 613) % 1440)
            rows.append((n, at.isoformat(sep=" "), "DE" if i % 3 else "FR", 10 + i % 7))
            n += 1
    mark = "?" if db.dialect == "sqlite" else "%s"
    cur = db.conn.cursor()
    cur.executemany(f"INSERT INTO {table} VALUES ({mark}, {mark}, {mark}, {mark})", rows)
    db.conn.commit()
    return table
