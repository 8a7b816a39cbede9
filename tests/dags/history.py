"""Test DAGs: data checks whose results go to the result history (check_results)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.operators.data_check import DataCheckOperator

START = pendulum.datetime(2024, 1, 1, tz="UTC")
PARAMS = {"conn_id": Param("opsflow_sqlite", type="string")}
CHECKS = [
    {"name": "rows", "kind": "row_count", "min": 1},
    {"name": "id_not_null", "kind": "not_null", "column": "id"},
    {"name": "amount_positive", "kind": "between", "column": "amount", "min": 0, "min_exclusive": True,
     "severity": "warn"},
    {"name": "pay_key_unique", "kind": "unique", "columns": ["customer_id", "id"]},
]

with DAG("test_history", schedule="@daily", start_date=START, catchup=False, params=PARAMS) as dag:
    DataCheckOperator(task_id="check_payments", conn_id="{{ params.conn_id }}", table="payments", checks=CHECKS,
                      fail_on=("fail", "error"))

# A check that cannot run (its table is missing) is retried: the retry's rows replace the first try's.
with DAG("test_history_retry", schedule=None, start_date=START, catchup=False, params=PARAMS) as retry_dag:
    DataCheckOperator(task_id="check_missing", conn_id="{{ params.conn_id }}", table="no_such_table",
                      checks=[{"name": "rows", "kind": "row_count", "min": 1}], retries=1,
                      retry_delay=pendulum.duration(seconds=0))

with DAG("test_history_off", schedule=None, start_date=START, catchup=False, params=PARAMS) as off_dag:
    DataCheckOperator(task_id="check_payments", conn_id="{{ params.conn_id }}", table="payments",
                      checks=CHECKS[:1], record_history=False)
