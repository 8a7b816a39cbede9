"""Sample data for the monitors: an ``orders`` history with weekly seasonality, and a processor's
``settlements`` for the sample payments (on another connection) to reconcile against.

Deterministic for a given ``now``. Planted problems:

* ``seed_orders(drop=True)``: yesterday (a Europe/Berlin day) has 25 % of its usual orders: the orders and
  the German revenue fall below their bands whatever the weekday; the French and Dutch revenue (a fifth
  of the orders each) do too, except on a Sunday, whose small values sit in bands as wide as a weekday's;
* ``seed_settlements(breaks=True)``: one succeeded payment was never settled, one was settled 1.00 short,
  and one settlement (id 99999) matches no payment.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from airflow_opsflow_testing.sample_data import _placeholder

BERLIN = ZoneInfo("Europe/Berlin")
_WEEKDAY_ORDERS = (230, 215, 210, 220, 240, 150, 120)  # Monday .. Sunday
_COUNTRIES = ("DE", "DE", "DE", "FR", "NL")


def seed_orders(conn: Any, now: datetime | None = None, days: int = 91, drop: bool = True) -> int:
    """(Re)create ``orders`` with ``days`` Berlin days of history up to ``now`` (UTC timestamps, naive) and
    today's orders so far. Returns the number of rows."""
    now = datetime.fromtimestamp((now or datetime.now(UTC)).timestamp(), UTC)  # a plain datetime (pendulum's too)
    today = now.astimezone(BERLIN).date()
    rnd = random.Random(7)
    rows: list[tuple[Any, ...]] = []
    for back in range(days, -1, -1):
        day = today - timedelta(days=back)
        start = datetime(day.year, day.month, day.day, tzinfo=BERLIN).astimezone(UTC)
        length = (datetime.combine(day + timedelta(days=1), datetime.min.time(), BERLIN).astimezone(UTC) - start)
        growth = math.exp(0.002 * (days - back))  # ~ +6 % a month
        count = round(_WEEKDAY_ORDERS[day.weekday()] * growth * rnd.gauss(1, 0.03))
        if drop and back == 1:
            count = round(count * 0.25)
        for _ in range(count):
            at = start + timedelta(seconds=rnd.uniform(0, length.total_seconds()))
            if at >= now - timedelta(minutes=1):
                continue  # today's orders so far only
            rows.append((len(rows) + 1, rnd.randint(1, 200), Decimal(str(round(rnd.uniform(15, 180), 2))),
                         rnd.choice(_COUNTRIES), at.replace(tzinfo=None, microsecond=0).isoformat(sep=" ")))
    return _replace(conn, "orders", "id INTEGER PRIMARY KEY, customer_id INTEGER, amount NUMERIC(12,2), "
                    "country VARCHAR(2), created_at TIMESTAMP", rows)


def seed_settlements(warehouse: Any, ops: Any, breaks: bool = True) -> int:
    """(Re)create ``settlements`` on the ``warehouse`` connection from the succeeded ``payments`` of the
    ``ops`` connection (see :func:`airflow_opsflow_testing.sample_data.seed`). Returns the number of rows."""
    cur = ops.cursor()
    cur.execute("SELECT id, amount, currency FROM payments WHERE status = 'succeeded' ORDER BY id")
    paid = [(int(i), Decimal(str(a)), c) for i, a, c in cur.fetchall()]
    cur.close()
    rows: list[tuple[Any, ...]] = [(i, a, c, "paid") for i, a, c in paid]
    if breaks:
        rows.pop()  # the newest succeeded payment was never settled
        i, a, c, s = rows[10]
        rows[10] = (i, a - Decimal("1.00"), c, s)  # settled 1.00 short
        rows.append((99999, Decimal("42.00"), "EUR", "paid"))  # a settlement for no payment
    return _replace(warehouse, "settlements", "payment_id INTEGER PRIMARY KEY, settled_amount NUMERIC(12,2), "
                    "currency VARCHAR(3), status VARCHAR(20)", rows)


def _replace(conn: Any, table: str, columns: str, rows: list[tuple[Any, ...]]) -> int:
    m = _placeholder(conn)
    if m == "?":  # sqlite3 binds no Decimal
        rows = [tuple(str(v) if isinstance(v, Decimal) else v for v in r) for r in rows]
    cur = conn.cursor()
    cur.execute(f"DROP TABLE IF EXISTS {table}")
    cur.execute(f"CREATE TABLE {table} ({columns})")
    cur.executemany(f"INSERT INTO {table} VALUES ({', '.join([m] * len(rows[0]))})", rows)  # noqa: S608 - ours
    conn.commit()
    cur.close()
    return len(rows)
