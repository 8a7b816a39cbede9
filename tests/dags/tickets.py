"""Test DAG: a payments check whose incidents are Jira tickets (and Slack alerts that link them)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.jira import JiraTicket
from airflow_opsflow.alerts.slack import SlackAlert
from airflow_opsflow.operators.data_check import DataCheckOperator

with DAG("test_tickets", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         params={"conn_id": Param("opsflow_sqlite", type="string")}) as dag:
    DataCheckOperator(
        task_id="check_payments",
        conn_id="{{ params.conn_id }}",
        table="payments",
        checks=[{"name": "amount_positive", "kind": "between", "column": "amount", "min": 0,
                 "min_exclusive": True, "owner": "payments-ops", "sample_columns": ["id", "amount"]}],
        alerts=[JiraTicket(project="OPS", conn_id="opsflow_jira", labels=("payments",), unconfirmed_create_wait=5),
                SlackAlert(conn_id="slack_api_default", channel="#alerts")],
        retries=2,
        retry_delay=pendulum.duration(seconds=0),
    )

with DAG("test_tickets_remind", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         params={"conn_id": Param("opsflow_sqlite", type="string")}) as remind_dag:
    DataCheckOperator(
        task_id="check_payments",
        conn_id="{{ params.conn_id }}",
        table="payments",
        checks=[{"name": "amount_positive", "kind": "between", "column": "amount", "min": 0, "min_exclusive": True}],
        alerts=[JiraTicket(project="OPS", conn_id="opsflow_jira", unconfirmed_create_wait=5)],
        incident_policy={"remind_every_runs": 1},  # every failing run comments: a write to break
        retries=3,
        retry_delay=pendulum.duration(seconds=0),
    )

with DAG("test_tickets_none", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         params={"conn_id": Param("opsflow_sqlite", type="string")}) as no_alerts_dag:
    DataCheckOperator(  # carries the Jira extra link, but without alerts it never has tickets
        task_id="check_payments",
        conn_id="{{ params.conn_id }}",
        table="payments",
        checks=[{"name": "amount_positive", "kind": "between", "column": "amount", "min": 0, "min_exclusive": True}],
    )
