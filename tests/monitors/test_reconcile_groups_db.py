"""Reconcile group totals count every row, as a GROUP BY of each side would (duplicated keys and NULL keys
included), and rows with a NULL key are reported, per side, as not compared. Both sides on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from airflow_opsflow.checks.loader import load_suite
from airflow_opsflow.core.results import CheckResult
from airflow_opsflow.flows.check_suite import run_suite
from tests.conftest import Database


@pytest.fixture
def sides(pg_db: Database) -> Iterator[tuple[str, str]]:
    ledger, settled = f"ledger_{uuid.uuid4().hex[:6]}", f"settled_{uuid.uuid4().hex[:6]}"
    for table in (ledger, settled):
        pg_db.execute(f"CREATE TABLE {table} (payment_id BIGINT, amount NUMERIC(12,2), currency TEXT)")
    rows = [(i, Decimal(10 + i), "EUR" if i % 2 else "USD") for i in range(1, 11)]
    cur = pg_db.conn.cursor()
    cur.executemany(f"INSERT INTO {settled} VALUES (%s, %s, %s)", rows)
    cur.executemany(f"INSERT INTO {ledger} VALUES (%s, %s, %s)", [
        *rows,
        (3, Decimal(13), "EUR"),          # payment 3 booked twice
        (None, Decimal(50), "EUR"),       # two rows without a key
        (None, Decimal(7), "USD"),
    ])
    pg_db.conn.commit()
    yield ledger, settled
    pg_db.execute(f"DROP TABLE {ledger}", f"DROP TABLE {settled}")


def reconcile(pg_db: Database, ledger: str, settled: str, **spec: Any) -> CheckResult:
    import psycopg2

    dsn = pg_db.conn.dsn
    suite = load_suite([{"kind": "reconcile", "name": "books", "left": {"table": ledger, "label": "ledger"},
                         "right": {"conn_id": "processor", "table": settled, "label": "processor"},
                         "key": "payment_id", **spec}])
    (result,) = run_suite(pg_db.conn, suite, "postgres",
                          connect=lambda conn_id: ((lambda: psycopg2.connect(dsn)), "postgres"))
    return result


def group_by(pg_db: Database, table: str) -> dict[str, tuple[int, Decimal]]:
    cur = pg_db.conn.cursor()
    cur.execute(f"SELECT currency, COUNT(*), SUM(amount) FROM {table} GROUP BY currency")
    out = {row[0]: (row[1], row[2]) for row in cur.fetchall()}
    pg_db.conn.rollback()
    return out


def test_group_totals_count_every_row_and_null_keys_are_reported(pg_db: Database,
                                                                  sides: tuple[str, str]) -> None:
    ledger, settled = sides
    r = reconcile(pg_db, ledger, settled, compare=["amount"], group_by="currency")
    assert r.status == "fail"
    # The groups' totals are what a GROUP BY on each side says: the duplicate and the NULL keys count.
    expected = group_by(pg_db, ledger)
    assert expected == {"EUR": (7, Decimal(138)), "USD": (6, Decimal(87))}
    groups = {g["currency"]: g for g in r.observed["groups off"]}
    assert set(groups) == {"EUR", "USD"}  # both differ from the processor's, which has neither
    for currency, (rows, amount) in expected.items():
        assert groups[currency]["ledger rows"] == rows and Decimal(str(groups[currency]["ledger amount"])) == amount
    assert (groups["EUR"]["processor rows"], groups["USD"]["processor rows"]) == (5, 5)
    # NULL keys: counted, per side, and said to be left out of the comparison.
    assert r.observed["NULL keys"] == 2 and r.observed["NULL keys on ledger"] == 2
    assert "NULL keys on processor" not in r.observed
    assert "2 rows with a NULL key, not compared (2 on ledger)" in r.message
    assert {"payment_id": None, "difference": "NULL key on ledger"} in r.samples
    assert r.observed["duplicate keys"] == 1 and r.observed["matched"] == 10
