"""Example DAGs: a quality gate on an Asset — the revenue summary runs only on payments that passed their checks.

* ``payments_quality``: checks the payments table and puts its verdict (worst status, counts, score, the
  checks that did not pass) on the ``VERIFIED_PAYMENTS`` asset event. ``fail_on=("error",)``: a data failure
  does not fail the task, so the bad verdict reaches the asset too (a failed task emits no event).
* ``payments_revenue_summary``: scheduled on that asset; ``QualityGateOperator`` reads the verdict of the
  event that triggered the run and skips the report when a check did not pass, so ``#finance-ops`` never gets
  figures built on bad data.

Connections: ``ops_db`` (any SQL connection; trigger with ``{"conn_id": ...}`` for another),
``slack_api_default``; the state database (``[opsflow] state_conn_id``) records the report's delivery.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, Param

from airflow_opsflow.operators.data_check import DataCheckOperator
from airflow_opsflow.operators.quality_gate import QualityGateOperator
from airflow_opsflow.operators.report import ReportOperator
from airflow_opsflow.report_deliveries import SlackReport

VERIFIED_PAYMENTS = Asset(name="verified_payments", uri="opsflow://ops_db/payments")
START = pendulum.datetime(2024, 1, 1, tz="UTC")

with DAG("payments_quality", schedule="@hourly", start_date=START, catchup=False,
         params={"conn_id": Param("ops_db", type="string")}, tags=["opsflow", "example", "quality-gate"],
         doc_md=__doc__) as producer:
    DataCheckOperator(
        task_id="check_payments",
        conn_id="{{ params.conn_id }}",
        table="payments",
        checks=[
            {"name": "amount_positive", "kind": "between", "column": "amount", "min": 0, "min_exclusive": True},
            {"name": "customer_exists", "kind": "foreign_key", "column": "customer_id", "to_table": "customers",
             "to_column": "id"},
            {"name": "status_known", "kind": "accepted_values", "column": "status",
             "values": ["succeeded", "failed", "pending", "refunded"]},
        ],
        fail_on=("error",),
        outlets=[VERIFIED_PAYMENTS],
    )

with DAG("payments_revenue_summary", schedule=[VERIFIED_PAYMENTS], start_date=START, catchup=False,
         params={"conn_id": Param("ops_db", type="string")}, tags=["opsflow", "example", "quality-gate"],
         doc_md=__doc__) as consumer:
    gate = QualityGateOperator(task_id="payments_passed_their_checks", asset=VERIFIED_PAYMENTS,
                               max_age=pendulum.duration(hours=2))
    summary = ReportOperator(
        task_id="revenue_by_provider",
        conn_id="{{ params.conn_id }}",
        queries={"payments": "SELECT provider, amount FROM payments WHERE status = 'succeeded'"},
        steps=[{"op": "group", "by": ["provider"], "agg": {"revenue": ["amount", "sum"]}},
               {"op": "sort", "by": ["revenue"], "ascending": False}, {"op": "total"},
               {"op": "round", "decimals": 2}],
        title="Revenue by payment provider (verified payments)",
        files=(),
        deliver=[SlackReport(channel="#finance-ops")],
    )
    gate >> summary
