"""Test DAG: dbt results gathered from several target directories (as astronomer-cosmos tasks leave them)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.operators.dbt_results import DbtResultsOperator

with DAG("test_dbt_targets", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         params={"targets": Param("/nonexistent/*/target", type="string")}) as dag:
    DbtResultsOperator(task_id="dbt_tests", target_path="{{ params.targets }}", current_run_only=False)

with DAG("test_dbt_targets_current", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
         catchup=False, params={"targets": Param("/nonexistent/*/target", type="string")}) as current_dag:
    DbtResultsOperator(task_id="dbt_tests", target_path="{{ params.targets }}")
