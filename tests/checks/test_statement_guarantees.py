"""What a check may do on a production database, on PostgreSQL, SQLite and MariaDB: every statement runs
under the timeout whatever earlier statements did, and a ``sql`` check's query runs exactly once."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from airflow_opsflow.checks.loader import load_suite
from airflow_opsflow.core.results import CheckResult
from airflow_opsflow.flows.check_suite import run_suite
from tests.conftest import Database


def run(db: Database, spec: Any, **kw: Any) -> dict[str, CheckResult]:
    results = run_suite(db.conn, load_suite(spec), db.dialect, **kw)
    json.dumps([r.to_dict() for r in results])
    return {r.name: r for r in results}


PAYMENTS = [
    "CREATE TABLE payments (id INTEGER PRIMARY KEY, email VARCHAR(80), amount DECIMAL(10,2), status VARCHAR(10))",
    "INSERT INTO payments VALUES (1, 'a@x.io', 10.50, 'failed'), (2, 'b@x.io', 3.00, 'ok'), "
    "(3, 'c@x.io', 7.25, 'failed'), (4, NULL, 1.00, 'failed')",
]


# -- the timeout holds for every statement ----------------------------------------------------------


def test_a_check_cannot_switch_the_timeout_off_for_the_next_one_postgres(pg_db: Database) -> None:
    # A function hides set_config from any parse-time refusal: the session itself must hold the line.
    pg_db.execute(
        "CREATE OR REPLACE FUNCTION opsflow_test_untimed() RETURNS text LANGUAGE sql "
        "AS $$ SELECT set_config('statement_timeout', '0', true) $$")
    spec = {"checks": [
        {"name": "switch_off", "kind": "sql",
         "sql": "SELECT 1 AS x FROM (SELECT opsflow_test_untimed() AS x) s WHERE x = 'no'"},
        {"name": "slow", "kind": "sql", "sql": "SELECT 1 AS x FROM pg_sleep(8)"},
    ]}
    r = run(pg_db, spec, statement_timeout=timedelta(seconds=2))
    assert r["switch_off"].status == "pass"  # it ran, and its savepoint kept the change...
    assert r["slow"].status == "error", r["slow"].message  # ...but the next statement is timed again
    assert "statement timeout (2 s) exceeded" in r["slow"].message


def test_a_tiny_timeout_is_a_timeout_not_none(pg_db: Database) -> None:
    r = run(pg_db, {"checks": [{"name": "slow", "kind": "sql", "sql": "SELECT 1 AS x FROM pg_sleep(2)"}]},
            statement_timeout=timedelta(microseconds=100))
    assert r["slow"].status == "error" and "statement timeout" in r["slow"].message


def test_a_check_cannot_switch_the_timeout_off_for_the_next_one_mariadb(mariadb_db: Database) -> None:
    mariadb_db.execute(
        "DROP FUNCTION IF EXISTS opsflow_test_untimed",
        "CREATE FUNCTION opsflow_test_untimed() RETURNS INT NOT DETERMINISTIC "
        "BEGIN SET SESSION max_statement_time = 0; RETURN 1; END")
    spec = {"checks": [
        {"name": "switch_off", "kind": "sql", "sql": "SELECT 1 AS x FROM (SELECT opsflow_test_untimed() AS x) s "
                                                     "WHERE x = 2"},
        # A real scan (SLEEP alone is answered with 1 when interrupted, not with an error).
        {"name": "slow", "kind": "sql",
         "sql": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) "
                "SELECT i FROM n WHERE i = 99999999"},
    ]}
    mariadb_db.execute("SET SESSION max_recursive_iterations = 200000000")
    r = run(mariadb_db, spec, statement_timeout=timedelta(seconds=2))
    cur = mariadb_db.conn.cursor()
    cur.execute("SELECT @@SESSION.max_statement_time")
    left = float(cur.fetchone()[0])
    assert r["switch_off"].status == "pass", r["switch_off"].message
    assert r["slow"].status == "error" and "statement timeout (2 s) exceeded" in r["slow"].message, r["slow"].message
    assert left == 2.0  # the session's limit was set again after the function switched it off


def test_sqlite_timeout_applies_to_every_statement(sqlite_db: Database) -> None:
    slow = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) "
            "SELECT i FROM n WHERE i = 99999999")
    r = run(sqlite_db, {"checks": [{"name": "a", "kind": "sql", "sql": slow},
                                   {"name": "b", "kind": "sql", "sql": slow}]},
            statement_timeout=timedelta(milliseconds=200))
    assert r["a"].status == r["b"].status == "error"
    assert all("statement timeout" in r[n].message for n in "ab")


# -- a sql check's query runs once ----------------------------------------------------------------


@pytest.fixture
def pg_payments(pg_db: Database) -> Iterator[Database]:
    pg_db.execute("DROP FUNCTION IF EXISTS opsflow_test_failed()", "DROP TABLE IF EXISTS payments", *PAYMENTS)
    yield pg_db
    pg_db.conn.rollback()  # leave the shared server as other tests expect it: no function on payments
    pg_db.execute("DROP FUNCTION IF EXISTS opsflow_test_failed()", "DROP TABLE IF EXISTS payments")


def test_sql_check_runs_once_postgres(pg_payments: Database) -> None:
    pg_db = pg_payments
    # A set-returning function that says each time it runs: psycopg2 collects the notices.
    pg_db.execute(
        "CREATE OR REPLACE FUNCTION opsflow_test_failed() RETURNS SETOF payments LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE NOTICE 'opsflow-executed'; "
        "RETURN QUERY SELECT * FROM payments WHERE status = 'failed'; END $$")
    pg_db.conn.notices.clear()
    r = run(pg_db, {"checks": [{"name": "failed", "kind": "sql", "sql": "SELECT * FROM opsflow_test_failed()",
                                "sample_limit": 2}]})
    executed = [n for n in pg_db.conn.notices if "opsflow-executed" in n]
    assert len(executed) == 1, pg_db.conn.notices
    failed = r["failed"]
    assert failed.status == "fail" and failed.violating_count == 3
    assert len(failed.samples) == 2 and len(failed.sql) == 1
    # Personal data stays out of samples unless asked for, and the message says so.
    assert all("email" not in s and {"id", "amount", "status"} <= set(s) for s in failed.samples)
    assert "leave out email" in failed.message


def test_sql_check_runs_once_sqlite(sqlite_db: Database) -> None:
    sqlite_db.execute(*PAYMENTS)
    calls = []
    sqlite_db.conn.create_function("opsflow_tick", 0, lambda: calls.append(1) or 1, deterministic=False)
    r = run(sqlite_db, {"checks": [
        {"name": "failed", "kind": "sql", "sample_columns": ["id", "email"],
         "sql": "SELECT id, email FROM payments, (SELECT opsflow_tick() AS t) WHERE status = 'failed'"}]})
    assert len(calls) == 1  # the one-row sub-select runs once per execution of the query
    assert r["failed"].violating_count == 3
    assert {s["email"] for s in r["failed"].samples} == {"a@x.io", "c@x.io", None}  # listed: shown


def test_sql_check_runs_once_mariadb(mariadb_db: Database) -> None:
    mariadb_db.execute("DROP TABLE IF EXISTS payments", *PAYMENTS, "SET @opsflow_runs = 0")
    r = run(mariadb_db, {"checks": [
        {"name": "failed", "kind": "sql",
         "sql": "SELECT id, amount FROM payments, (SELECT @opsflow_runs := @opsflow_runs + 1 AS t) AS x "
                "WHERE status = 'failed'"}]})
    cur = mariadb_db.conn.cursor()
    cur.execute("SELECT @opsflow_runs")
    assert int(cur.fetchone()[0]) == 1
    assert r["failed"].violating_count == 3 and len(r["failed"].samples) == 3


def test_sql_check_with_entities_runs_once_and_keeps_null_keys_counted(sqlite_db: Database) -> None:
    from airflow_opsflow.flows.check_suite import EntityTracking
    from airflow_opsflow.incidents.entities import Changes, Tracked

    class Memory:
        def __init__(self) -> None:
            self.state: dict[str, dict[str, Tracked]] = {}

        def load(self, subject: str) -> dict[str, Tracked]:
            return dict(self.state.get(subject, {}))

        def apply(self, subject: str, changes: Changes) -> None:
            self.state[subject] = {**self.state.get(subject, {}), **{t.key: t for t in changes.upsert}}

    sqlite_db.execute(*PAYMENTS, "INSERT INTO payments VALUES (5, 'e@x.io', 2.00, 'failed')",
                      "UPDATE payments SET email = NULL WHERE id = 5")
    calls = []
    sqlite_db.conn.create_function("opsflow_tick", 0, lambda: calls.append(1) or 1, deterministic=False)
    spec = {"checks": [{"name": "stuck", "kind": "sql",
                        "sql": "SELECT email, amount FROM payments, (SELECT opsflow_tick() AS t) "
                               "WHERE status = 'failed'",
                        "entity": {"key": "email", "amount": "amount"}}]}
    tracking = EntityTracking(Memory(), "run-1", lambda check: f"subject/{check}")
    r = run(sqlite_db, spec, entities=tracking)["stuck"]
    assert len(calls) == 1
    assert r.violating_count == 4  # every violating row, NULL keys included
    assert r.entities is not None and r.entities["open"] == 2  # NULL keys are no entity


def test_expression_samples_carry_a_key_to_find_the_row(sqlite_db: Database) -> None:
    sqlite_db.execute(*PAYMENTS)
    r = run(sqlite_db, {"table": "payments", "checks": [{"name": "positive", "kind": "expression",
                                                         "expression": "amount > 5"}]})
    assert r["positive"].samples and all(set(s) == {"id", "amount"} for s in r["positive"].samples)


@pytest.mark.parametrize("dialect", ["sqlite"])
def test_sqlite_connection_is_left_writable(sqlite_db: Database, dialect: str) -> None:
    sqlite_db.execute(*PAYMENTS)
    run(sqlite_db, {"checks": [{"name": "q", "kind": "sql", "sql": "SELECT id FROM payments"}]},
        statement_timeout=timedelta(seconds=1))
    assert isinstance(sqlite_db.conn, sqlite3.Connection)
    sqlite_db.execute("INSERT INTO payments VALUES (9, NULL, 1, 'ok')")


@pytest.mark.parametrize("name", ["email", "userEmail", "customer_email", "EmailAddress", "phoneNumber", "dateOfBirth",
                                  "billing_addr", "E-Mail", "IPAddress", "card_number", "first_name", "iban"])
def test_personal_looking_names(name: str) -> None:
    from airflow_opsflow.checks.sample_policy import looks_personal

    assert looks_personal(name)


@pytest.mark.parametrize("name", ["id", "payment_id", "amount", "status", "token_count", "card_type", "ip_count",
                                  "email_verified", "created_at", "age_days"])
def test_names_that_are_facts_not_personal_data(name: str) -> None:
    from airflow_opsflow.checks.sample_policy import looks_personal

    assert not looks_personal(name)


def test_sql_check_statement_carries_only_shown_columns() -> None:
    from airflow_opsflow.checks.compiler import compile_suite

    suite = load_suite([{"kind": "sql", "sql": "SELECT p.ID, p.customerEmail, amount AS \"Amt\" FROM payments p"}])
    (q,) = compile_suite(suite, "postgres").queries
    # the database folds unquoted ID itself; the e-mail never enters the statement's window
    assert q.sql.startswith('SELECT COUNT(*) OVER () AS opsflow_violations, ID, "Amt" FROM (')
