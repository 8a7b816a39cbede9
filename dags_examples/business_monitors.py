"""Scenario 10 and friends: business metrics that behave unlike themselves, late data, books that do not
agree, and failed payments followed one by one.

Every morning, after the nightly loads:

* **daily_metrics**: orders and revenue per Berlin day, each judged against its own history (trend and
  day-of-week seasonality learnt from the state store; the first run backfills 8 weeks from the table),
  revenue per country as separate series; changes under 10 % never alert. Today's orders must be there
  by 06:00 Berlin time on business days (weekends, Berlin's public holidays and the office's own days
  off excepted).
* **failed_payments**: each failed payment of the last week is an entity: the alert says how many are
  new, how many are still open, the oldest, and the money at stake; the incident escalates to an error
  when one is older than a day or more than 5,000 EUR are at stake.
* **ledger_vs_settlements**: the succeeded payments in the production database against the processor's
  settlements in the warehouse (another connection), key by key (missing either side, amounts off by
  more than a cent) and per currency (counts and sums).

Alerts go to Slack ``#finance-ops``; the metric history, entities and incidents live in the state
database named by ``[opsflow] state_conn_id``. Trigger with ``{"conn_id": ..., "warehouse_conn_id": ...}``
to point it at your databases.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.slack import SlackAlert
from airflow_opsflow.operators.data_check import DataCheckOperator

FINANCE_SLACK = SlackAlert(conn_id="slack_api_default", channel="#finance-ops")

with DAG(
    dag_id="ops_business_monitors",
    schedule="30 6 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="Europe/Berlin"),
    catchup=False,
    max_active_runs=1,
    params={"conn_id": Param("ops_db", type="string", description="the production database (orders, payments)"),
            "warehouse_conn_id": Param("warehouse", type="string", description="where settlements land")},
    tags=["opsflow", "example", "monitors", "finance"],
    doc_md=__doc__,
) as dag:
    daily_metrics = DataCheckOperator(
        task_id="daily_metrics",
        conn_id="{{ params.conn_id }}",
        table="orders",
        checks="""
        - kind: metric
          name: orders_per_day
          description: orders placed per Berlin day
          metric: COUNT(*)
          time_column: created_at
          timezone: Europe/Berlin
          seasonality: day_of_week
          backfill: 56
          min_relative_change: 10%
          owner: sales-ops
        - kind: metric
          name: revenue_per_day_by_country
          description: revenue per Berlin day and country (EUR)
          metric: SUM(amount)
          time_column: created_at
          timezone: Europe/Berlin
          segment_by: [country]
          max_series: 30
          seasonality: day_of_week
          backfill: 56
          min_relative_change: 10%
          owner: finance-ops
        - kind: freshness
          name: orders_loaded_by_6
          column: created_at
          deadline: "06:00"
          calendar:
            timezone: Europe/Berlin
            country: DE
            subdivision: BE
            holidays: [2026-12-24, 2026-12-31]
        """,
        alerts=[FINANCE_SLACK],
    )

    failed_payments = DataCheckOperator(
        task_id="failed_payments",
        conn_id="{{ params.conn_id }}",
        checks=[{
            "kind": "sql",
            "name": "failed_payments",
            "description": "Failed payments of the last week, followed until they succeed or are written off",
            "severity": "warn",
            "sql": """
                SELECT id, customer_id, amount, provider, created_at FROM payments
                WHERE status = 'failed'
                  AND created_at >= '{{ (dag_run.run_after - macros.timedelta(days=7)).strftime('%Y-%m-%d') }}'
            """,
            "entity": {"key": "id", "amount": "amount", "since": "created_at", "sla": "24h",
                       "escalate_above": 5000, "noun": "failed payment"},
            "owner": "payments-ops",
        }],
        alerts=[FINANCE_SLACK],
    )

    ledger_vs_settlements = DataCheckOperator(
        task_id="ledger_vs_settlements",
        conn_id="{{ params.conn_id }}",
        checks=[{
            "kind": "reconcile",
            "name": "ledger_vs_settlements",
            "description": "Every succeeded payment is settled by the processor, for the same amount",
            "left": {"sql": "SELECT id AS payment_id, amount, currency FROM payments WHERE status = 'succeeded'",
                     "label": "ledger"},
            "right": {"conn_id": "{{ params.warehouse_conn_id }}", "table": "settlements", "label": "processor"},
            "key": ["payment_id"],
            "compare": [{"column": "amount", "right_column": "settled_amount", "tolerance": 0.01}],
            "group_by": ["currency"],
            "owner": "finance-ops",
        }],
        alerts=[FINANCE_SLACK],
    )
