"""A spec that is valid when the DAG is parsed (its condition is a template) and invalid once rendered."""

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.operators.data_check import DataCheckOperator

with DAG("test_spec_error_at_run_time", schedule=None, catchup=False,
         start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
         params={"cond": Param("1 = 1; DROP TABLE payments", type="string")}) as dag:
    # Nothing listens behind opsflow_nowhere: opening it would be a retryable error, not the spec's.
    DataCheckOperator(task_id="bad_at_run", conn_id="opsflow_nowhere", table="payments", retries=2,
                      retry_delay=pendulum.duration(seconds=0), where="{{ params.cond }}",
                      checks=[{"kind": "row_count"}])
