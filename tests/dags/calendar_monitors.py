"""Test DAG: daily B2B payments judged with a business calendar (German holidays, the last business day's
billing run, a campaign day) beside the same metric without one."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.slack import SlackAlert
from airflow_opsflow.operators.data_check import DataCheckOperator

with DAG("test_calendar_monitors", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         params={"conn_id": Param("opsflow_sqlite", type="string"),
                 "table": Param("payments", type="string")}) as dag:
    DataCheckOperator(
        task_id="daily_payments",
        conn_id="{{ params.conn_id }}",
        table="{{ params.table }}",
        checks="""
        - kind: metric
          name: payments_per_day
          metric: COUNT(*)
          time_column: created_at
          seasonality: day_of_week
          calendar: {timezone: Europe/Berlin, country: DE}
          events:
            - last_business_day
            - {name: spring_campaign, dates: ["2026-06-05"]}
        - kind: metric
          name: payments_no_calendar
          metric: COUNT(*)
          time_column: created_at
          timezone: Europe/Berlin
          seasonality: day_of_week
          severity: warn
        """,
        alerts=[SlackAlert(conn_id="slack_api_default", channel="#data-quality")],
    )
