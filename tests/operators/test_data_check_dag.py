"""DataCheckOperator in real DAG runs (dag.test) on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.sample_data import seed

from tests.conftest import Database
from tests.helpers import DAGS, load_module, results_by_name

pytestmark = pytest.mark.usefixtures("airflow_db")

dags = load_module(DAGS / "check_kinds.py")
KINDS = {c["kind"] for c in dags.ALL_KINDS}


def _break_everything(db: Database) -> None:
    """Make every check of ALL_KINDS fail (the table loses its primary key so duplicates can exist)."""
    db.execute(
        "CREATE TABLE payments_copy AS SELECT * FROM payments",
        "DROP TABLE payments",
        "ALTER TABLE payments_copy RENAME TO payments",
        "DELETE FROM payments WHERE id > 900",  # row_count < 1000
        "UPDATE payments SET created_at = '2020-01-01 00:00:00'",  # stale: freshness fails
        "INSERT INTO payments SELECT * FROM payments WHERE id = 5",  # duplicate id and (customer_id, id)
        "INSERT INTO payments VALUES (3001, 9999, NULL, 'EUR', 'weird', 'bitcoin', '1999-01-01 00:00:00')",
        "INSERT INTO payments VALUES (3002, 1, -5, 'EUR', 'refunded', 'stripe', '2020-01-01 00:00:00')",
        "INSERT INTO payments VALUES (3003, 2, 990, 'EUR', 'refunded', 'stripe', '2020-01-01 00:00:00')",
    )


def test_every_kind_passes_on_good_data(db: Database) -> None:
    seed(db.conn, problems=False)
    run = run_dag(dags.dag, conf={"conn_id": db.conn_id})

    assert run.task_states == {"all_kinds": "success"}
    payload = run.xcom("all_kinds")
    assert payload == run.xcom("all_kinds", key="results")
    results = results_by_name(payload)
    assert {r["kind"] for r in results.values()} == KINDS and len(KINDS) == 10
    assert {n: r["status"] for n, r in results.items()} == {n: "pass" for n in results}
    assert results["rows"]["observed"] == 2000
    assert results["providers"]["observed"] == 3
    assert results["id_unique"]["violating_count"] == 0


def test_every_kind_catches_its_violation(db: Database) -> None:
    seed(db.conn, problems=False)
    _break_everything(db)
    run = run_dag(dags.dag, conf={"conn_id": db.conn_id})

    assert run.task_states == {"all_kinds": "failed"}
    assert run.tries["all_kinds"] == 1  # a data failure is not retried
    results = results_by_name(run.xcom("all_kinds", key="results"))
    assert {n: r["status"] for n, r in results.items()} == {n: "fail" for n in results}
    assert results["rows"]["observed"] == 904
    assert results["amount_nn"]["violating_count"] == 1
    assert results["amount_nn"]["samples"] == [{"id": 3001, "amount": None}]  # with the key to find the row
    assert results["id_unique"]["observed"] == {"duplicate_keys": 1, "duplicate_rows": 2}
    assert results["id_unique"]["samples"] == [{"id": 5, "occurrences": 2}]
    assert results["pay_key_unique"]["violating_count"] == 2
    assert results["status_known"]["samples"] == [{"id": 3001, "status": "weird"}]
    assert results["amount_range"]["violating_count"] == 1
    assert results["amount_range"]["observed"]["min"] == -5
    assert results["created_range"]["samples"] == [{"id": 3001, "created_at": "1999-01-01 00:00:00"}] or \
        results["created_range"]["samples"] == [{"id": 3001, "created_at": "1999-01-01T00:00:00"}]
    assert "old" in results["fresh"]["message"]
    assert results["providers"]["observed"] == 4
    assert results["amount_positive"]["violating_count"] == 1  # NULL amount is not_null's business
    assert results["customer_fk"]["samples"] == [{"id": 3001, "customer_id": 9999}]
    assert results["no_huge_refunds"]["violating_count"] == 1
    assert results["no_huge_refunds"]["samples"] == [{"id": 3003}]


def test_regex_on_postgres(pg_db: Database) -> None:
    seed(pg_db.conn, problems=False)
    run = run_dag(dags.regex_dag, conf={"conn_id": pg_db.conn_id})
    assert run.task_states == {"regex": "success"}
    pg_db.execute("UPDATE customers SET email = 'not an email' WHERE id IN (3, 4)")
    run = run_dag(dags.regex_dag, conf={"conn_id": pg_db.conn_id})
    result = run.xcom("regex", key="results")["results"][0]
    assert (run.task_states["regex"], result["status"], result["violating_count"]) == ("failed", "fail", 2)
    assert sorted(result["samples"], key=lambda s: s["id"]) == [{"id": 3, "email": "not an email"},
                                                               {"id": 4, "email": "not an email"}]


def test_regex_on_sqlite_is_a_clear_error(sqlite_db: Database) -> None:
    seed(sqlite_db.conn, problems=False)
    run = run_dag(dags.regex_dag, conf={"conn_id": sqlite_db.conn_id})
    result = run.xcom("regex", key="results")["results"][0]
    assert run.task_states["regex"] == "failed"
    assert result["status"] == "error"
    assert "sqlite dialect has no regular-expression support" in result["message"]
    assert result["sql"] == []  # nothing ran


def test_yaml_file_with_templated_where(db: Database) -> None:
    seed(db.conn, problems=True)  # 6 of the 40 payments of the last hour failed
    run = run_dag(dags.yaml_dag, conf={"conn_id": db.conn_id})
    results = results_by_name(run.xcom("from_yaml", key="results"))
    assert results["window_rows"]["observed"] == 40
    share = results["window_failed_share"]
    assert (share["status"], share["violating_count"], share["violating_share"]) == ("fail", 6, 0.15)
    assert share["threshold"] == "at most 5%"
    assert "{{" not in share["where"] and "created_at >=" in share["where"]


def test_warn_only_checks_leave_the_task_green(db: Database) -> None:
    seed(db.conn, problems=True)
    run = run_dag(dags.warn_dag, conf={"conn_id": db.conn_id})
    assert run.task_states == {"warn_only": "success"}
    assert run.xcom("warn_only")["status"] == "warn"


def test_missing_connection_names_task_and_connection(sqlite_db: Database,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    run = run_dag(dags.missing_conn_dag)
    assert run.task_states == {"nowhere": "failed"}
    out = capfd.readouterr()
    assert "connection 'no_such_connection' is not defined" in out.out + out.err


@pytest.mark.parametrize("uri", [
    "postgresql://opsflow:s3cr3t-pw@127.0.0.1:{port}/opsflow",  # nothing listens there
    "sqlite:////{tmp}/ops.db",  # SQLAlchemy's four slashes: Airflow's sqlite provider adds one more
], ids=["refused", "sqlite-four-slashes"])
def test_unopenable_connection_names_task_and_connection(uri: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_OPSFLOW_DOWN", uri.format(port=port, tmp=str(tmp_path).lstrip("/")))
    run = run_dag(dags.unreachable_dag, conf={"conn_id": "opsflow_down"})
    assert run.task_states == {"unreachable": "failed"}
    out = capfd.readouterr()
    text = out.out + out.err
    assert "dag 'test_check_unreachable', task 'unreachable': cannot open connection 'opsflow_down'" in text
    assert "s3cr3t-pw" not in text
    if uri.startswith("sqlite"):
        assert "AIRFLOW_CONN_OPSFLOW_DOWN='sqlite:///" in text  # the form that works
        assert run.tries["unreachable"] == 1  # a configuration error: not retried
    else:
        assert "Connection refused" in text
        assert run.tries["unreachable"] == 2  # retried: the database may be back
