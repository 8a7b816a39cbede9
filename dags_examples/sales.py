"""Scenario 9: a demo request on the website reaches sales in Slack at once, and escalates when nobody
answers it within the SLA.

Every 10 minutes, each unanswered demo request is an entity of one incident in ``#sales``: the first run
that sees requests says "2 new demo requests", later runs say only what is new ("1 new demo request, 2
still open"), the incident escalates to an error when the oldest has waited 2 hours, and it resolves when
every request has been answered (``contacted_at`` set).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.slack import SlackAlert
from airflow_opsflow.operators.data_check import DataCheckOperator

with DAG(
    dag_id="sales_demo_requests",
    schedule="*/10 * * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={"conn_id": Param("ops_db", type="string")},
    tags=["opsflow", "example", "sales"],
    doc_md=__doc__,
) as dag:
    DataCheckOperator(
        task_id="unanswered_demo_requests",
        conn_id="{{ params.conn_id }}",
        checks=[{
            "kind": "sql",
            "name": "unanswered_demo_requests",
            "description": "Demo requests from the website that nobody in sales has answered yet",
            "sql": "SELECT id, company, email, requested_at FROM demo_requests WHERE contacted_at IS NULL",
            "severity": "warn",  # new requests are news; an overdue one is an error
            "entity": {"key": "id", "since": "requested_at", "sla": "2h", "noun": "demo request"},
            "sample_columns": ["company", "requested_at"],
            "owner": "sales",
        }],
        alerts=[SlackAlert(conn_id="slack_api_default", channel="#sales", mask_columns=("email",))],
    )
