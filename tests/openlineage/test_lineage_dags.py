"""OpenLineage events of opsflow's operators in real DAG runs, validated against the OpenLineage schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow_opsflow_testing.dag_runner import run_dag

from tests.conftest import Database
from tests.helpers import DAGS, load_module
from tests.openlineage.conftest import Events

pytestmark = pytest.mark.usefixtures("airflow_db")
dags = load_module(DAGS / "openlineage.py")


def orders(db: Database) -> None:
    # The PostgreSQL database is the session's: earlier tests may have left their own customers/orders.
    db.execute("DROP TABLE IF EXISTS orders", "DROP TABLE IF EXISTS customers",
               "CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(40))",
               "INSERT INTO customers VALUES (1, 'Ada'), (2, 'Bob')",
               "CREATE TABLE orders (id INTEGER, customer_id INTEGER, amount NUMERIC(10, 2))",
               "INSERT INTO orders VALUES (1, 1, 10), (2, 2, 20), (3, NULL, 5)")


def final(events: Events, dag_id: str, task_id: str) -> dict[str, Any]:
    got = events.of_task(dag_id, task_id)
    assert got and got[0]["eventType"] == "START", got
    return got[-1]


def test_data_check_emits_assertions_per_table(db: Database, lineage_events: Events) -> None:
    orders(db)
    try:
        run = run_dag(dags.check_dag, conf={"conn_id": db.conn_id})
    finally:
        db.execute("DROP TABLE orders", "DROP TABLE customers")
    assert run.task_states == {"check_orders": "failed"}  # a NULL customer: the verdict goes out on FAIL
    event = final(lineage_events, "test_ol_check", "check_orders")
    assert event["eventType"] == "FAIL"
    [dataset] = event["inputs"]
    if db.dialect == "postgres":
        assert dataset["namespace"].startswith("postgres://127.0.0.1:") or dataset["namespace"].startswith(
            "postgres://localhost:")
        assert dataset["name"].endswith(".public.orders") and dataset["name"].count(".") == 2
    else:
        assert dataset["namespace"].startswith("sqlite:///") and dataset["namespace"].endswith("ops.db")
        assert dataset["name"] == "main.orders"
    assertions = {a["name"]: a for a in dataset["facets"]["dataQualityAssertions"]["assertions"]}
    assert {n: (a["assertion"], a["success"], a.get("column")) for n, a in assertions.items()} == {
        "row_count": ("row_count", True, None), "customer_known": ("not_null", False, "customer_id"),
        "one_line": ("unique", True, "id, customer_id")}
    assert dataset["inputFacets"]["dataQualityMetrics"]["rowCount"] == 3
    validate(lineage_events.all())


def test_sync_lineage_source_tables_to_the_endpoint(sqlite_db: Database, http_conn: str, recording_http: Any,
                                                    lineage_events: Events, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OL_STATE", json.dumps({"conn_type": "sqlite",
                                                            "host": str(tmp_path / "state.db")}))
    orders(sqlite_db)
    run = run_dag(dags.sync_dag, conf={"conn_id": sqlite_db.conn_id})
    assert run.task_states == {"push": "success"}
    event = final(lineage_events, "test_ol_sync", "push")
    assert event["eventType"] == "COMPLETE"
    assert sorted(d["name"] for d in event["inputs"]) == ["main.customers", "main.orders"]
    assert {d["namespace"] for d in event["inputs"]} == {f"sqlite://{tmp_path / 'ops.db'}"}
    [out] = event["outputs"]
    assert (out["namespace"], out["name"]) == (f"http://127.0.0.1:{recording_http.port}", "/v1/orders")
    validate(lineage_events.all())


def test_report_lineage_names_the_tables_its_queries_read(sqlite_db: Database, slack_conn: str,
                                                          lineage_events: Events) -> None:
    orders(sqlite_db)
    run = run_dag(dags.report_dag, conf={"conn_id": sqlite_db.conn_id})
    assert run.task_states == {"report": "success"}
    event = final(lineage_events, "test_ol_report", "report")
    assert sorted(d["name"] for d in event["inputs"]) == ["main.customers", "main.orders"]
    validate(lineage_events.all())


def test_dbt_results_as_assertions(sqlite_db: Database, lineage_events: Events, tmp_path: Path) -> None:
    from tests.dbt.test_artifacts import result, write

    orders(sqlite_db)
    target = write(tmp_path / "target", [result("test.shop.not_null_orders_id.ab12", "fail", failures=1),
                                         result("test.shop.assert_totals.ef56", "pass", failures=0)])
    run = run_dag(dags.dbt_dag, conf={"conn_id": sqlite_db.conn_id, "target": str(target)})
    assert run.task_states == {"dbt_results": "success"}
    event = final(lineage_events, "test_ol_dbt", "dbt_results")
    by_name = {d["name"]: d for d in event["inputs"]}
    assert set(by_name) == {"main.orders", "main.invoices"}
    [orders_assertion] = by_name["main.orders"]["facets"]["dataQualityAssertions"]["assertions"]
    assert (orders_assertion["name"], orders_assertion["assertion"], orders_assertion["success"]) == (
        "not_null_orders_id", "dbt_test", False)
    validate(lineage_events.all())


def validate(events: list[dict[str, Any]]) -> None:
    from tests.openlineage.schemas import validate_event

    assert events
    for event in events:
        validate_event(event)
