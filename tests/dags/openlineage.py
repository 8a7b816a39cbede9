"""Test DAGs for tests/openlineage: each opsflow operator whose lineage the OpenLineage provider emits."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.destinations import HttpEndpoint
from airflow_opsflow.operators.data_check import DataCheckOperator
from airflow_opsflow.operators.dbt_results import DbtResultsOperator
from airflow_opsflow.operators.report import ReportOperator
from airflow_opsflow.operators.reverse_sync import ReverseSyncOperator
from airflow_opsflow.report_deliveries import SlackReport

START = pendulum.datetime(2024, 1, 1, tz="UTC")
PARAMS = {"conn_id": Param("opsflow_sqlite", type="string")}

with DAG("test_ol_check", schedule=None, start_date=START, catchup=False, params=PARAMS) as check_dag:
    DataCheckOperator(task_id="check_orders", conn_id="{{ params.conn_id }}", table="orders", retries=0,
                      record_history=False,
                      checks=[{"kind": "row_count", "min": 1},
                              {"kind": "not_null", "column": "customer_id", "name": "customer_known"},
                              {"kind": "unique", "columns": ["id", "customer_id"], "name": "one_line"}])

with DAG("test_ol_sync", schedule=None, start_date=START, catchup=False, params=PARAMS) as sync_dag:
    ReverseSyncOperator(task_id="push", conn_id="{{ params.conn_id }}", primary_key="id", record_history=False,
                        sql="SELECT o.id, o.amount, c.name FROM orders o JOIN customers c ON c.id = o.customer_id",
                        destination=HttpEndpoint("http_default", endpoint="/v1/orders"), state_conn_id="ol_state")

with DAG("test_ol_report", schedule=None, start_date=START, catchup=False, params=PARAMS) as report_dag:
    ReportOperator(task_id="report", conn_id="{{ params.conn_id }}", title="Orders",
                   queries={"orders": "SELECT c.name, SUM(o.amount) AS total FROM orders o "
                                      "JOIN customers c ON c.id = o.customer_id GROUP BY c.name"},
                   deliver=[SlackReport(channel="#ops")], files=())

with DAG("test_ol_dbt", schedule=None, start_date=START, catchup=False,
         params={**PARAMS, "target": Param("", type="string")}) as dbt_dag:
    DbtResultsOperator(task_id="dbt_results", target_path="{{ params.target }}", conn_id="{{ params.conn_id }}",
                       current_run_only=False, record_history=False, fail_on=())
