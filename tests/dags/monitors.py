"""Test DAG: daily orders judged against their history (with alerts), and a business-calendar freshness rule."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.slack import SlackAlert
from airflow_opsflow.operators.data_check import DataCheckOperator

with DAG("test_monitors", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         params={"conn_id": Param("opsflow_sqlite", type="string"), "table": Param("orders", type="string")}) as dag:
    DataCheckOperator(
        task_id="daily_orders",
        conn_id="{{ params.conn_id }}",
        table="{{ params.table }}",
        checks="""
        - kind: metric
          name: orders_per_day
          description: orders placed per Berlin day
          metric: COUNT(*)
          time_column: created_at
          timezone: Europe/Berlin
          seasonality: day_of_week
          min_relative_change: 10%
          owner: ops
        - kind: freshness
          name: orders_arrive
          column: created_at
          deadline: "06:00"
          calendar: {timezone: Europe/Berlin, holidays: ["2026-06-04"]}
        """,
        alerts=[SlackAlert(conn_id="slack_api_default", channel="#data-quality")],
    )
