"""The result history written by real DAG runs: one row per check per run, a retry replacing its run's rows,
and nothing recorded when it is turned off (SQLite and PostgreSQL state databases)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pendulum
import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.sample_data import repair, seed

from airflow_opsflow.history.repo import result_id, sql_hash
from airflow_opsflow.incidents.lifecycle import fingerprint
from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db")
dags = load_module(DAGS / "history.py")
DAY = pendulum.datetime(2026, 3, 1, tz="UTC")


@pytest.fixture(autouse=True)
def state_in_db(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", db.conn_id)
    if db.name == "postgres":  # the server is shared by the session's tests: start from no history
        db.execute("DROP TABLE IF EXISTS opsflow_check_results", "DROP TABLE IF EXISTS opsflow_schema_version")


def rows(db: Database, dag_id: str) -> list[dict[str, Any]]:
    cur = db.conn.cursor()
    cur.execute(f"SELECT * FROM opsflow_check_results WHERE dag_id = '{dag_id}' ORDER BY run_at, check_name")
    names = [d[0] for d in cur.description]
    found = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    db.conn.rollback()
    return found


def test_every_run_records_one_row_per_check(db: Database) -> None:
    seed(db.conn, problems=True)
    first = run_dag(dags.dag, conf={"conn_id": db.conn_id}, logical_date=DAY)
    assert first.task_states == {"check_payments": "success"}  # the failing check only warns
    repair(db.conn)
    second = run_dag(dags.dag, conf={"conn_id": db.conn_id}, logical_date=DAY + timedelta(days=1))

    found = rows(db, "test_history")
    assert len(found) == 8  # 4 checks x 2 runs
    by_run = {(r["run_id"], r["check_name"]): r for r in found}
    warned = by_run[(first.run_id, "amount_positive")]
    results = {r["name"]: r for r in first.xcom("check_payments", key="results")["results"]}
    assert (warned["status"], warned["severity"], warned["kind"]) == ("warn", "warn", "between")
    assert warned["violating_count"] == results["amount_positive"]["violating_count"] == 2
    assert warned["rows_checked"] == results["amount_positive"]["rows_checked"]
    assert warned["violating_share"] == pytest.approx(results["amount_positive"]["violating_share"])
    assert (warned["table_name"], warned["column_name"]) == ("payments", "amount")
    assert json.loads(warned["observed"]) == results["amount_positive"]["observed"]
    assert warned["sql_hash"] == sql_hash(results["amount_positive"]["sql"]) and len(warned["sql_hash"]) == 16
    assert warned["fingerprint"] == fingerprint("test_history", "check_payments", "amount_positive")
    assert warned["result_id"] == result_id(_ref(first.run_id), "amount_positive")
    assert warned["try_number"] == 1 and warned["message"] == results["amount_positive"]["message"]
    # the run's own time (its data interval end), whatever the wall clock said when it ran
    assert warned["run_at"] == "2026-03-01T00:00:00+00:00"
    assert by_run[(second.run_id, "amount_positive")]["status"] == "pass"
    assert by_run[(second.run_id, "amount_positive")]["run_at"] == "2026-03-02T00:00:00+00:00"
    rows_check = by_run[(first.run_id, "rows")]
    assert rows_check["observed_value"] == json.loads(rows_check["observed"]) == results["rows"]["observed"]
    assert rows_check["column_name"] is None  # a table-level check
    assert by_run[(first.run_id, "pay_key_unique")]["column_name"] == "customer_id, id"
    assert by_run[(first.run_id, "amount_positive")]["observed_value"] is None  # a mapping is not a number


def _ref(run_id: str) -> Any:
    from airflow_opsflow.history.repo import RunRef

    return RunRef("test_history", "check_payments", run_id)


def test_a_retry_replaces_its_runs_rows(db: Database) -> None:
    run = run_dag(dags.retry_dag, conf={"conn_id": db.conn_id}, logical_date=DAY)
    assert run.task_states == {"check_missing": "failed"} and run.tries["check_missing"] == 2
    [row] = rows(db, "test_history_retry")  # not one per try
    assert (row["status"], row["try_number"]) == ("error", 2)
    assert "no_such_table" in row["message"]


def test_record_history_false_records_nothing(db: Database) -> None:
    seed(db.conn, problems=False)
    run = run_dag(dags.off_dag, conf={"conn_id": db.conn_id}, logical_date=DAY)
    assert run.task_states == {"check_payments": "success"}
    cur = db.conn.cursor()
    try:
        cur.execute("SELECT COUNT(*) FROM opsflow_check_results WHERE dag_id = 'test_history_off'")
        assert cur.fetchone()[0] == 0
    except Exception as e:  # no state table at all: nothing asked for the store
        assert "opsflow_check_results" in str(e)
    finally:
        db.conn.rollback()


def test_without_a_state_database_checks_run_as_before(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__OPSFLOW__STATE_CONN_ID")
    seed(db.conn, problems=False)
    run = run_dag(dags.dag, conf={"conn_id": db.conn_id}, logical_date=DAY)
    assert run.task_states == {"check_payments": "success"}
    assert len(run.xcom("check_payments", key="results")["results"]) == 4
