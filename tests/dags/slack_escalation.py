"""Test DAG: stuck deliveries with a 48 h SLA, alerted in Slack only; a reminder on every failing run."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.slack import SlackAlert
from airflow_opsflow.operators.data_check import DataCheckOperator

with DAG("test_slack_escalation", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         params={"conn_id": Param("opsflow_sqlite", type="string")}) as dag:
    DataCheckOperator(
        task_id="deliveries",
        conn_id="{{ params.conn_id }}",
        checks="""
        - kind: sql
          name: stuck_deliveries
          owner: logistics-ops
          severity: warn
          sql: >
            SELECT delivery_id, value_eur, shipped_at FROM deliveries
            WHERE status = 'in_transit'
              AND shipped_at < '{{ data_interval_end.subtract(hours=24).strftime('%Y-%m-%d %H:%M:%S') }}'
          entity:
            key: delivery_id
            amount: value_eur
            since: shipped_at
            sla: 48h
            noun: stuck delivery
        """,
        alerts=[SlackAlert(conn_id="slack_api_default", channel="#ops")],
        incident_policy={"remind_every_runs": 1},
        retries=1,
        retry_delay=pendulum.duration(seconds=0),
    )
