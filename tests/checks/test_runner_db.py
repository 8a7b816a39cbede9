"""The engine on real databases (SQLite and the throwaway PostgreSQL), without Airflow."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from airflow_opsflow_testing.sample_data import seed

from airflow_opsflow.checks.loader import load_suite
from airflow_opsflow.checks.session import QueryError, ReadOnlySession
from airflow_opsflow.core.results import CheckResult
from airflow_opsflow.flows.check_suite import run_suite
from tests.conftest import Database


def run(db: Database, spec: Any, **kw: Any) -> dict[str, CheckResult]:
    results = run_suite(db.conn, load_suite(spec), db.dialect, **kw)
    json.dumps([r.to_dict() for r in results])  # always JSON-serialisable
    return {r.name: r for r in results}


@pytest.fixture
def payments(db: Database, clock: datetime) -> Database:
    seed(db.conn, now=clock.replace(tzinfo=None), problems=True)  # times relative to the test's clock
    return db


def test_one_bad_check_does_not_hide_the_others(payments: Database) -> None:
    r = run(payments, {"table": "payments", "checks": [
        {"name": "ok1", "kind": "not_null", "column": "amount"},
        {"name": "broken", "kind": "expression", "expression": "no_such_function(amount) > 0"},
        {"name": "ok2", "kind": "between", "column": "amount", "min": 0},
    ]})
    assert r["broken"].status == "error" and "no_such_function" in r["broken"].message.lower()
    assert (r["ok1"].status, r["ok2"].status, r["ok2"].violating_count) == ("pass", "fail", 2)
    # the batch ran once, then each check alone
    assert len(r["ok1"].sql) == 2 and r["ok1"].sql[0] == r["broken"].sql[0]


def test_empty_data_never_passes_silently(db: Database) -> None:
    seed(db.conn, problems=False)
    db.execute("DELETE FROM payments")
    r = run(db, {"table": "payments", "checks": [
        {"name": "rows", "kind": "row_count"},
        {"name": "nn", "kind": "not_null", "column": "amount"},
        {"name": "nn_ok_empty", "kind": "not_null", "column": "amount", "on_empty": "pass"},
        {"name": "nn_warn", "kind": "not_null", "column": "amount", "on_empty": "warn"},
        {"name": "fresh", "kind": "freshness", "column": "created_at", "max_age": "1d", "on_empty": "pass"},
        {"name": "modes", "kind": "distinct_count", "column": "provider", "max": 3},
        {"name": "uniq", "kind": "unique", "column": "id"},
        {"name": "fk", "kind": "foreign_key", "column": "customer_id", "to_table": "customers",
         "to_column": "id"},
        {"name": "failed", "kind": "sql", "sql": "SELECT id FROM payments WHERE status = 'failed'"},
    ]})
    assert {n: x.status for n, x in r.items()} == {
        "rows": "fail", "nn": "fail", "nn_ok_empty": "pass", "nn_warn": "warn", "fresh": "fail",
        "modes": "fail", "uniq": "fail", "fk": "fail", "failed": "pass"}
    assert "no rows to check" in r["nn"].message
    assert "freshness cannot be established" in r["fresh"].message


def test_thresholds_on_counts_and_shares(payments: Database, clock: datetime) -> None:
    last_hour = "created_at >= '" + _cutoff(clock, hours=1) + "'"
    r = run(payments, {"table": "payments", "where": last_hour, "checks": [
        {"name": "strict", "kind": "expression", "expression": "status <> 'failed'"},
        {"name": "share_ok", "kind": "expression", "expression": "status <> 'failed'", "fail_above": "20%"},
        {"name": "share_warn", "kind": "expression", "expression": "status <> 'failed'", "fail_above": "20%",
         "warn_above": "10%"},
        {"name": "count_warn", "kind": "expression", "expression": "status <> 'failed'", "severity": "warn",
         "warn_above": 5},
        {"name": "count_ok", "kind": "expression", "expression": "status <> 'failed'", "severity": "warn",
         "warn_above": 6},
    ]})
    assert r["strict"].violating_count == 6 and r["strict"].rows_checked == 40
    assert r["strict"].violating_share == pytest.approx(0.15)
    assert {n: x.status for n, x in r.items()} == {
        "strict": "fail", "share_ok": "pass", "share_warn": "warn", "count_warn": "warn", "count_ok": "pass"}
    assert r["share_warn"].threshold == "at most 10%"


def _cutoff(now: datetime, hours: int) -> str:
    return (now - timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S")


def test_samples_are_limited_selected_and_only_for_failures(payments: Database) -> None:
    r = run(payments, {"table": "payments", "sample_columns": ["id"], "checks": [
        {"name": "failed", "kind": "expression", "expression": "status <> 'failed'", "sample_limit": 3},
        {"name": "neg", "kind": "between", "column": "amount", "min": 0, "sample_columns": ["id", "amount"]},
        {"name": "fine", "kind": "not_null", "column": "amount"},
        {"name": "none", "kind": "expression", "expression": "status <> 'failed'", "sample_limit": 0},
    ]})
    assert len(r["failed"].samples) == 3 and set(r["failed"].samples[0]) == {"id", "status"}
    assert sorted(s["id"] for s in r["neg"].samples) == [100, 500]
    assert set(r["neg"].samples[0]) == {"id", "amount"}
    assert r["fine"].samples == [] and len(r["fine"].sql) == 1  # no sample query for a passing check
    assert r["none"].samples == [] and len(r["none"].sql) == 1


def test_unknown_table_and_column_are_named(payments: Database) -> None:
    r = run(payments, {"tables": [
        {"table": "no_such_table", "checks": [{"name": "t", "kind": "row_count"}]},
        {"table": "payments", "checks": [{"name": "c", "kind": "not_null", "column": "amout"},
                                         {"name": "fk", "kind": "foreign_key", "column": "customer_id",
                                          "to_table": "customers", "to_column": "ident"}]}]})
    assert r["t"].status == "error" and "table 'no_such_table' cannot be read" in r["t"].message
    assert r["c"].message.startswith("column 'amout' not found in table 'payments' (columns: id, customer_id")
    assert "column 'ident' not found in table 'customers'" in r["fk"].message


@pytest.fixture
def runner_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader refuses such SQL already (tests/checks/test_spec.py); skip that layer to test this one."""
    monkeypatch.setattr("airflow_opsflow.checks.loader.verify_sql", lambda *args, **kwargs: None)


@pytest.mark.usefixtures("runner_only")
def test_injected_sql_never_runs(payments: Database) -> None:
    r = run(payments, {"table": "payments", "where": "1 = 1", "checks": [
        {"name": "e", "kind": "expression", "expression": "amount > 0; DROP TABLE customers"},
        {"name": "s", "kind": "sql", "sql": "SELECT 1; DROP TABLE customers"},
        {"name": "ok", "kind": "row_count"},
    ]})
    assert r["e"].status == r["s"].status == "error"
    assert r["e"].sql == r["s"].sql == []
    assert r["ok"].status == "pass"
    assert payments.scalar("SELECT COUNT(*) FROM customers") == 200


def test_names_are_resolved_whatever_their_case(db: Database) -> None:
    db.execute('DROP TABLE IF EXISTS "order"',
               'CREATE TABLE "order" (id INTEGER, "select" INTEGER, "Mixed Case" VARCHAR(10))',
               """INSERT INTO "order" VALUES (1, 1, 'a'), (2, NULL, 'b')""")
    r = run(db, {"table": "order", "checks": [
        {"name": "a", "kind": "not_null", "column": "SELECT"},
        {"name": "b", "kind": "accepted_values", "column": "mixed case", "values": ["a", "b"]},
    ]})
    assert (r["a"].status, r["a"].violating_count, r["b"].status) == ("fail", 1, "pass")


@pytest.mark.usefixtures("runner_only")
def test_checks_run_read_only(pg_db: Database, sqlite_db: Database) -> None:
    pg_db.execute("DROP SEQUENCE IF EXISTS s", "CREATE SEQUENCE s")
    r = run(pg_db, {"checks": [{"name": "w", "kind": "sql", "sql": "SELECT nextval('s') AS n"}]})
    assert r["w"].status == "error" and "read-only transaction" in r["w"].message
    sqlite_db.execute("CREATE TABLE t (x INTEGER)")
    with ReadOnlySession(sqlite_db.conn, "sqlite") as session, pytest.raises(QueryError, match="readonly"):
        session.query("INSERT INTO t VALUES (1)")
    sqlite_db.execute("INSERT INTO t VALUES (1)")  # the connection is writable again afterwards


def test_statement_timeout(pg_db: Database, sqlite_db: Database) -> None:
    r = run(pg_db, {"checks": [{"name": "slow", "kind": "sql", "sql": "SELECT 1 AS x FROM pg_sleep(5)"}]},
            statement_timeout=timedelta(milliseconds=300))
    assert r["slow"].status == "error" and "statement timeout (0.3 s) exceeded" in r["slow"].message
    started = time.monotonic()
    slow = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) "
            "SELECT i FROM n WHERE i = 99999999")
    r = run(sqlite_db, {"checks": [{"name": "slow", "kind": "sql", "sql": slow}]},
            statement_timeout=timedelta(milliseconds=300))
    assert r["slow"].status == "error" and "statement timeout (0.3 s) exceeded" in r["slow"].message
    assert time.monotonic() - started < 5


def test_freshness_and_dates(payments: Database, clock: datetime) -> None:
    r = run(payments, {"table": "payments", "checks": [
        {"name": "fresh", "kind": "freshness", "column": "created_at", "max_age": "2h"},
        {"name": "stale", "kind": "freshness", "column": "created_at", "max_age": "30s"},
        {"name": "since_2000", "kind": "between", "column": "created_at", "min": "2000-01-01"},
    ]}, now=clock)
    assert r["fresh"].status == "pass" and r["fresh"].observed["age_s"] < 3600
    assert r["stale"].status == "fail" and "old (max 30s)" in r["stale"].message
    assert r["since_2000"].status == "pass"
