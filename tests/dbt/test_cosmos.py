"""DbtResultsOperator after an astronomer-cosmos DbtTaskGroup, for real: dbt-core builds the example project on
the test PostgreSQL one cosmos task at a time (ExecutionMode.LOCAL, each in a temporary copy of the project), a
cosmos callback keeps each task's ``target``, and DbtResultsOperator merges them: the tests seeded to warn
warn, a test that fails fails (and its cosmos task fails, the models after it do not run), the others pass."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.sample_data import seed

from tests.conftest import Database
from tests.dbt.test_dbt_pipeline import NEGATIVE, ORPHAN, dbt_bin
from tests.helpers import DAGS, load_module, results_by_name

pytestmark = pytest.mark.usefixtures("airflow_db")
STATUS = "accepted_values_stg_payments_status__succeeded__failed__refunded"


@pytest.fixture
def cosmos_dag(pg_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    import cosmos.settings

    monkeypatch.setattr(cosmos.settings, "enable_telemetry", False)  # no usage metrics sent from tests
    monkeypatch.setattr(cosmos.settings, "cache_dir", tmp_path / "cosmos-cache")
    monkeypatch.setenv("OPSFLOW_DBT_BIN", dbt_bin())
    monkeypatch.setenv("OPSFLOW_DBT_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", pg_db.conn_id)
    pg_db.execute("DROP TABLE IF EXISTS opsflow_incidents, opsflow_deliveries, opsflow_schema_version",
                  "DROP SCHEMA IF EXISTS analytics CASCADE")
    seed(pg_db.conn, problems=True)
    yield load_module(DAGS / "dbt_cosmos.py")
    pg_db.execute("DROP SCHEMA IF EXISTS analytics CASCADE")  # its views hold on to the sample tables


def test_results_of_cosmos_tasks_are_read_and_merged(cosmos_dag: ModuleType, pg_db: Database) -> None:
    # one run covers every outcome (each cosmos task is a dbt process of a few seconds): the seeded problems
    # warn, two unknown payment statuses fail stg_payments' tests, so customer_spend never builds
    pg_db.execute("UPDATE payments SET status = 'chargeback' WHERE id IN (7, 8)")
    run = run_dag(cosmos_dag.dag)
    assert run.task_states == {
        "dbt.stg_customers.run": "success", "dbt.stg_customers.test": "success",
        "dbt.stg_payments.run": "success", "dbt.stg_payments.test": "failed",
        "dbt.customer_spend.run": "upstream_failed", "dbt.customer_spend.test": "upstream_failed",
        "dbt_tests": "failed"}  # all_done: it reports, then fails on the failing test (fail_on)
    payload = run.xcom("dbt_tests", key="results")
    assert payload["command"] == "test" and payload["dbt_version"].startswith("1.")
    results = results_by_name(payload)
    # merged from both test tasks' targets (the run tasks' hold model results only)
    assert {n: r["status"] for n, r in results.items() if r["status"] != "pass"} == {
        STATUS: "fail", NEGATIVE: "warn", ORPHAN: "warn"}
    assert results["unique_stg_customers_customer_id"]["status"] == "pass"
    assert results["unique_stg_payments_payment_id"]["status"] == "pass"
    assert results[STATUS]["violating_count"] == 1 and results[STATUS]["table"] == "stg_payments"
    # the compiled SQL kept by the callback: the failing rows are sampled from the warehouse
    assert results[STATUS]["samples"] == [{"value_field": "chargeback", "n_records": 2}]
    assert sorted(s["amount"] for s in results[NEGATIVE]["samples"]) == [-120.0, -15.5]
    assert not any("customer_spend" in name for name in results)  # not built: its tests say nothing
