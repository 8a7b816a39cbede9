"""Sample operational data (customers, payments, deliveries, invoices) with known problems.

Used by ``make demo``, the example DAGs' tests and DAG authors' own tests. Deterministic for a given
``now``: timestamps are relative to it so freshness and "last hour" checks behave like production.

Planted problems (``problems=True``), each one a scenario the example DAGs must catch:

* 6 of the 40 payments of the last hour failed (15 %, above the 5 % alert level);
* 2 payments have a negative amount; 1 payment points at customer 9999, who does not exist;
* 4 deliveries have been ``in_transit`` for more than 48 hours (stuck);
* 3 invoices have ``total <> subtotal + tax``; invoice number ``INV-00007`` is used twice.

:func:`repair` fixes them all, as an ops team would.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

TABLES = ("customers", "payments", "deliveries", "invoices")

_DDL = {
    "customers": "id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(200), "
    "country VARCHAR(2), plan VARCHAR(20), created_at TIMESTAMP",
    "payments": "id INTEGER PRIMARY KEY, customer_id INTEGER, amount NUMERIC(12,2), currency VARCHAR(3), "
    "status VARCHAR(20), provider VARCHAR(20), created_at TIMESTAMP",
    "deliveries": "id INTEGER PRIMARY KEY, order_ref VARCHAR(20), customer_id INTEGER, status VARCHAR(20), "
    "carrier VARCHAR(20), status_changed_at TIMESTAMP, promised_at TIMESTAMP",
    "invoices": "id INTEGER PRIMARY KEY, invoice_number VARCHAR(20), customer_id INTEGER, "
    "subtotal NUMERIC(12,2), tax NUMERIC(12,2), total NUMERIC(12,2), issued_at TIMESTAMP",
}
_COUNTRIES = ["DE", "FR", "NL", "ES", "IT", "GB", "US"]
_PLANS = ["free", "starter", "pro", "enterprise"]


def _placeholder(conn: Any) -> str:
    module = type(conn).__module__.split(".")[0]
    return "?" if module in ("sqlite3", "_sqlite3") else "%s"


def seed(conn: Any, now: datetime | None = None, problems: bool = True) -> dict[str, int]:
    """(Re)create the four tables on a DB-API connection and fill them. Returns rows per table."""
    now = (now or datetime.utcnow()).replace(microsecond=0)
    rnd = random.Random(42)
    rows = _generate(rnd, now, problems)
    cur = conn.cursor()
    for table in reversed(TABLES):
        cur.execute(f"DROP TABLE IF EXISTS {table}")
    for table in TABLES:
        cur.execute(f"CREATE TABLE {table} ({_DDL[table]})")
        data = rows[table]
        if _placeholder(conn) == "?":  # sqlite3 binds no Decimal; NUMERIC affinity turns text into numbers
            data = [tuple(str(v) if isinstance(v, Decimal) else v for v in r) for r in data]
        marks = ", ".join([_placeholder(conn)] * len(data[0]))
        cur.executemany(f"INSERT INTO {table} VALUES ({marks})", data)  # noqa: S608 - our own constant names
    conn.commit()
    cur.close()
    return {t: len(r) for t, r in rows.items()}


def repair(conn: Any) -> None:
    """Fix every planted problem (the ops team did their job)."""
    cur = conn.cursor()
    for sql in (
        "UPDATE payments SET status = 'succeeded' WHERE status = 'failed'",
        "UPDATE payments SET amount = -amount WHERE amount < 0",
        "UPDATE payments SET customer_id = 1 WHERE customer_id = 9999",
        "UPDATE deliveries SET status = 'delivered' WHERE status = 'in_transit'",
        "UPDATE invoices SET total = subtotal + tax WHERE total <> subtotal + tax",
        "UPDATE invoices SET invoice_number = 'INV-09999' WHERE id = 8",
    ):
        cur.execute(sql)
    conn.commit()
    cur.close()


def _money(rnd: random.Random, lo: float, hi: float) -> Decimal:
    return Decimal(str(round(rnd.uniform(lo, hi), 2)))


def _generate(rnd: random.Random, now: datetime, problems: bool) -> dict[str, list[tuple[Any, ...]]]:
    ts = lambda d: d.strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731 - text timestamps work on every driver
    customers = [
        (i, f"Customer {i}", f"customer{i}@example.com", rnd.choice(_COUNTRIES), rnd.choice(_PLANS),
         ts(now - timedelta(days=rnd.randint(30, 900))))
        for i in range(1, 201)
    ]
    payments = []
    for i in range(1, 2001):
        # The last 40 payments fall in the last hour; the rest spread over 30 days.
        age = timedelta(minutes=rnd.randint(1, 59)) if i > 1960 else timedelta(minutes=rnd.randint(61, 43200))
        status = rnd.choices(["succeeded", "failed", "refunded"], [95, 3, 2])[0]
        if i > 1960:
            status = "failed" if (problems and i > 1994) else "succeeded"
        payments.append([i, rnd.randint(1, 200), _money(rnd, 5, 900), "EUR", status,
                         rnd.choice(["stripe", "adyen", "paypal"]), ts(now - age)])
    if problems:
        payments[99][2] = Decimal("-120.00")
        payments[499][2] = Decimal("-15.50")
        payments[999][1] = 9999
    deliveries = []
    for i in range(1, 501):
        changed = now - timedelta(hours=rnd.randint(1, 40))
        status = rnd.choice(["created", "in_transit", "delivered", "delivered", "delivered"])
        if problems and i in (17, 123, 256, 404):
            status, changed = "in_transit", now - timedelta(hours=49 + i % 30)
        deliveries.append((i, f"ORD-{i:05d}", rnd.randint(1, 200), status, rnd.choice(["dhl", "ups", "gls"]),
                           ts(changed), ts(changed + timedelta(hours=48))))
    invoices = []
    for i in range(1, 801):
        subtotal = _money(rnd, 20, 5000)
        tax = (subtotal * Decimal("0.19")).quantize(Decimal("0.01"))
        total = subtotal + tax
        if problems and i in (42, 314, 777):
            total += Decimal("10.00")
        number = f"INV-{i:05d}"
        if problems and i == 8:
            number = "INV-00007"
        invoices.append((i, number, rnd.randint(1, 200), subtotal, tax, total,
                         ts(now - timedelta(days=rnd.randint(0, 60)))))
    return {
        "customers": customers,
        "payments": [tuple(p) for p in payments],
        "deliveries": deliveries,
        "invoices": invoices,
    }
