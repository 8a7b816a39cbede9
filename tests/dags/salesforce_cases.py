"""Test DAG: a payments check whose incidents are Salesforce Cases (and Slack alerts that link them)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.salesforce import SalesforceCase
from airflow_opsflow.alerts.slack import SlackAlert
from airflow_opsflow.operators.data_check import DataCheckOperator

with DAG("test_salesforce_cases", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         params={"conn_id": Param("opsflow_sqlite", type="string")}) as dag:
    DataCheckOperator(
        task_id="check_payments",
        conn_id="{{ params.conn_id }}",
        table="payments",
        checks=[{"name": "amount_positive", "kind": "between", "column": "amount", "min": 0,
                 "min_exclusive": True, "owner": "payments-ops", "sample_columns": ["id", "amount"]}],
        alerts=[SalesforceCase(conn_id="salesforce_default", fields={"Origin": "Web"},
                               unconfirmed_create_wait=5),
                SlackAlert(conn_id="slack_api_default", channel="#alerts")],
        retries=2,
        retry_delay=pendulum.duration(seconds=0),
    )
