"""Reconciliation across two real databases: a ledger in SQLite against settlements in PostgreSQL."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from airflow_opsflow_testing.dag_runner import run_dag

from airflow_opsflow.checks.loader import CheckSpecError, load_suite
from airflow_opsflow.core.results import CheckResult
from airflow_opsflow.flows.check_suite import run_suite
from tests.conftest import Database
from tests.helpers import DAGS, load_module, results_by_name


@pytest.fixture
def books(sqlite_db: Database, pg_db: Database) -> Iterator[tuple[str, str]]:
    """1,000 ledger payments (SQLite) and the processor's settlements (PostgreSQL), with planted breaks."""
    ledger, settled = "ledger", f"settlements_{uuid.uuid4().hex[:6]}"
    sqlite_db.execute(f"CREATE TABLE {ledger} (payment_id INTEGER, amount NUMERIC(12,2), currency TEXT, status TEXT)")
    pg_db.execute(f"CREATE TABLE {settled} (payment_id BIGINT, settled_amount NUMERIC(12,2), currency TEXT, "
                  "status TEXT)")
    rows = [(i, f"{10 + i % 90}.{i % 100:02d}", "EUR" if i % 4 else "USD", "paid") for i in range(1, 1001)]
    sqlite_db.conn.executemany(f"INSERT INTO {ledger} VALUES (?, ?, ?, ?)", rows)
    sqlite_db.conn.commit()
    changed = {7: ("49.50", None), 8: ("18.09", None), 9: (None, "refunded")}  # 7: off; 8 (18.08): within 0.01
    theirs = []
    for pid, amount, currency, status in rows:
        if pid == 5:
            continue  # never settled
        new_amount, new_status = changed.get(pid, (None, None))
        theirs.append((pid, new_amount or amount, currency, new_status or status))
    theirs.append((2001, "12.00", "EUR", "paid"))  # settled, but not in the ledger
    cur = pg_db.conn.cursor()
    cur.executemany(f"INSERT INTO {settled} VALUES (%s, %s, %s, %s)", theirs)
    pg_db.conn.commit()
    yield ledger, settled
    pg_db.execute(f"DROP TABLE {settled}")


def connections(sqlite_db: Database, pg_db: Database) -> Any:
    import psycopg2

    dsn = pg_db.conn.dsn

    def connect(conn_id: str | None) -> tuple[Any, str]:
        if conn_id == "processor":
            return (lambda: psycopg2.connect(dsn)), "postgres"
        path = sqlite_db.conn.execute("PRAGMA database_list").fetchone()[2]
        return (lambda: sqlite3.connect(path)), "sqlite"

    return connect


def reconcile(sqlite_db: Database, pg_db: Database, **spec: Any) -> CheckResult:
    suite = load_suite([{"kind": "reconcile", "name": "ledger_vs_processor", **spec}])
    (result,) = run_suite(sqlite_db.conn, suite, "sqlite", connect=connections(sqlite_db, pg_db))
    return result


def test_missing_extra_and_mismatched_payments(sqlite_db: Database, pg_db: Database,
                                               books: tuple[str, str]) -> None:
    ledger, settled = books
    r = reconcile(sqlite_db, pg_db, left={"table": ledger},
                  right={"conn_id": "processor", "table": settled, "label": "processor"}, key="payment_id",
                  compare=[{"column": "amount", "right_column": "settled_amount", "tolerance": 0.01}, "status"])
    assert r.status == "fail", r.message
    assert r.observed == {"ledger rows": 1000, "processor rows": 1000, "matched": 997, "only on ledger": 1,
                          "only on processor": 1, "mismatched": 2}
    assert r.violating_count == 4 and r.rows_checked == 1001  # keys seen on either side
    assert r.samples == [
        {"payment_id": 5, "difference": "only on ledger"},
        {"payment_id": 7, "difference": "amount: 17.07 vs 49.50"},
        {"payment_id": 9, "difference": "status: paid vs refunded"},
        {"payment_id": 2001, "difference": "only on processor"},
    ]
    assert r.message == "1001 keys: 1 only on ledger; 1 only on processor; 2 mismatched (amount 1, status 1)"
    assert "payment_id on both ledger and processor, with equal amount ±0.01, status" in r.expected


def test_tolerances_and_group_totals(sqlite_db: Database, pg_db: Database, books: tuple[str, str]) -> None:
    ledger, settled = books
    spec = {"left": {"table": ledger}, "right": {"conn_id": "processor", "table": settled, "label": "processor"},
            "key": "payment_id", "compare": [{"column": "amount", "right_column": "settled_amount",
                                              "tolerance": "200%"}],
            "group_by": "currency", "fail_above": 2}
    r = reconcile(sqlite_db, pg_db, **spec)
    # Two keys on one side only, within fail_above; but the groups' sums are off (and exact by default).
    assert r.status == "fail" and r.violating_count == 2
    eur, usd = r.observed["groups off"]
    assert eur["currency"] == "EUR" and eur["ledger rows"] == eur["processor rows"] == 750  # 5 missing, 2001 extra
    assert (eur["ledger amount"], eur["processor amount"]) != (usd["ledger amount"], usd["processor amount"])
    assert usd["processor amount"] - usd["ledger amount"] == pytest.approx(0.01)  # payment 8, within its own 0.01
    assert r.observed["groups"] == 2 and "2 of 2 groups off" in r.message
    loose = reconcile(sqlite_db, pg_db, **{**spec, "group_tolerance": "5%"})
    assert loose.status == "pass" and "within tolerance" in loose.message


def test_text_keys_merge_byte_wise(sqlite_db: Database, pg_db: Database) -> None:
    ids = ["Pay-B", "pay-a", "pay-b", "PAY-C", "pay_ä", "pay-10", "pay-9"]  # mixed case, non-ASCII, digits
    sqlite_db.execute("CREATE TABLE lk (id TEXT, v INTEGER)")
    sqlite_db.conn.executemany("INSERT INTO lk VALUES (?, 1)", [(i,) for i in ids])
    sqlite_db.conn.commit()
    table = f"rk_{uuid.uuid4().hex[:6]}"
    pg_db.execute(f"CREATE TABLE {table} (id TEXT, v INTEGER)")
    cur = pg_db.conn.cursor()
    cur.executemany(f"INSERT INTO {table} VALUES (%s, 1)", [(i,) for i in ids if i != "pay-a"])
    pg_db.conn.commit()
    try:
        r = reconcile(sqlite_db, pg_db, left={"table": "lk"}, right={"conn_id": "processor", "table": table},
                      key="id", compare=["v"])
        assert r.observed["matched"] == 6 and r.samples == [{"id": "pay-a", "difference": "only on lk"}]
    finally:
        pg_db.execute(f"DROP TABLE {table}")


def test_bad_keys_are_counted_or_refused(sqlite_db: Database, pg_db: Database, books: tuple[str, str]) -> None:
    ledger, settled = books
    sqlite_db.execute(f"INSERT INTO {ledger} VALUES (NULL, 1, 'EUR', 'paid')",
                      f"INSERT INTO {ledger} VALUES (3, 1, 'EUR', 'paid')")
    r = reconcile(sqlite_db, pg_db, left={"table": ledger}, right={"conn_id": "processor", "table": settled},
                  key="payment_id")
    assert r.observed["duplicate keys"] == 1 and r.observed["NULL keys"] == 1
    assert "1 duplicate keys" in r.message and "1 rows with a NULL key" in r.message
    text_ids = reconcile(sqlite_db, pg_db, left={"table": ledger},
                         right={"conn_id": "processor", "sql": f"SELECT CAST(payment_id AS TEXT) AS payment_id "
                                                               f"FROM {settled}"}, key="payment_id")
    assert text_ids.status == "error"
    assert "key column 'payment_id' holds number values on ledger but text values on" in text_ids.message
    missing = reconcile(sqlite_db, pg_db, left={"table": ledger}, right={"conn_id": "processor", "table": settled},
                        key="payment_id", compare=["amount"])
    assert missing.status == "error" and "column 'amount' not found on" in missing.message


def test_spec_errors_name_the_field() -> None:
    with pytest.raises(CheckSpecError, match=r"check 'r' \(reconcile\): field 'right': give exactly one of "
                                             "'table' and 'sql'"):
        load_suite([{"kind": "reconcile", "name": "r", "left": {"table": "a"}, "right": {}, "key": "id"}])
    with pytest.raises(CheckSpecError, match="named twice"):
        load_suite([{"kind": "reconcile", "name": "r", "left": {"table": "a"}, "right": {"table": "b"},
                     "key": "id", "compare": ["id"]}])
    with pytest.raises(CheckSpecError, match=r"field 'compare.0.tolerance': expected a number"):
        load_suite([{"kind": "reconcile", "name": "r", "left": {"table": "a"}, "right": {"table": "b"},
                     "key": "id", "compare": [{"column": "x", "tolerance": "lots"}]}])


dags = load_module(DAGS / "reconcile.py")


@pytest.mark.usefixtures("airflow_db")
def test_reconcile_in_a_dag_run(sqlite_db: Database, pg_db: Database, books: tuple[str, str]) -> None:
    _, settled = books
    run = run_dag(dags.dag, conf={"ledger_conn": sqlite_db.conn_id, "processor_conn": pg_db.conn_id,
                                  "settlements": settled})
    assert run.task_states == {"reconcile": "failed"}
    result = results_by_name(run.xcom("reconcile", key="results"))["ledger_vs_processor"]
    assert result["status"] == "fail" and result["violating_count"] == 4
    assert result["table"] == "ledger vs processor"
