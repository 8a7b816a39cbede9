"""Scenarios 3 and 7: customer success acts on churn signals, and a weekly account review replaces the
spreadsheet built by hand from the production database and the CRM.

* ``cs_churn_signals`` (daily): every customer gets a churn risk from their payments (regular payers who
  have not paid for ``quiet_days``); the risk is synced to their HubSpot contact (only contacts whose risk
  changed are sent), and each customer newly at risk is announced in ``#customer-success`` with the money
  at stake, once, until they pay again.
* ``cs_account_review`` (weekly): the top accounts by spend from the production database, joined with
  what the CRM says about them (lifecycle stage, churn risk), as a table in Slack and an XLSX by email.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.slack import SlackAlert
from airflow_opsflow.destinations import HubSpotObjects
from airflow_opsflow.operators.data_check import DataCheckOperator
from airflow_opsflow.operators.report import ReportOperator
from airflow_opsflow.operators.reverse_sync import ReverseSyncOperator
from airflow_opsflow.report_deliveries import EmailReport, SlackReport
from airflow_opsflow.sync.mapping import Field

# Spend per customer, shared by the queries as a DAG macro: {{ customer_spend }}.
CUSTOMER_SPEND = """
    SELECT c.id AS account_id, c.name, c.email, c.plan,
           COUNT(p.id) AS payments, COALESCE(SUM(p.amount), 0) AS lifetime_spend, MAX(p.created_at) AS last_payment_at
    FROM customers AS c
    LEFT JOIN payments AS p ON p.customer_id = c.id AND p.status = 'succeeded'
    GROUP BY c.id, c.name, c.email, c.plan
"""
MACROS = {"customer_spend": CUSTOMER_SPEND}

with DAG(
    dag_id="cs_churn_signals",
    schedule="0 7 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"conn_id": Param("ops_db", type="string"), "quiet_days": Param(7, type="integer", minimum=1)},
    user_defined_macros=MACROS,
    tags=["opsflow", "example", "customer-success", "reverse-etl"],
    doc_md=__doc__,
) as churn:
    sync = ReverseSyncOperator(
        task_id="churn_risk_to_crm",
        conn_id="{{ params.conn_id }}",
        sql="SELECT email, name, lifetime_spend, CASE WHEN payments >= 5 AND last_payment_at < "
            "'{{ (dag_run.run_after - macros.timedelta(days=params.quiet_days)).strftime('%Y-%m-%d %H:%M:%S') }}' "
            "THEN 'high' ELSE 'low' END AS churn_risk FROM ({{ customer_spend }}) AS spend",
        primary_key="email",
        mode="upsert",  # every customer has a risk; only the ones whose risk or spend changed are sent
        mapping={"email": "email", "company": "name", "churn_risk": "churn_risk",
                 "lifetime_spend": Field("lifetime_spend", "number")},
        destination=HubSpotObjects("contacts", id_property="email"),
    )
    alert = DataCheckOperator(
        task_id="customers_at_risk",
        conn_id="{{ params.conn_id }}",
        checks=[{
            "kind": "sql",
            "name": "customers_at_risk",
            "description": "Regular payers (5+ payments) who have not paid for a while: call them",
            "severity": "warn",
            "sql": "SELECT account_id, name, plan, lifetime_spend, last_payment_at FROM ({{ customer_spend }}) AS "
                   "spend WHERE payments >= 5 AND last_payment_at < '{{ (dag_run.run_after - "
                   "macros.timedelta(days=params.quiet_days)).strftime('%Y-%m-%d %H:%M:%S') }}'",
            "entity": {"key": "account_id", "amount": "lifetime_spend", "noun": "customer at risk",
                       "plural": "customers at risk"},
            "owner": "customer-success",
        }],
        alerts=[SlackAlert(conn_id="slack_api_default", channel="#customer-success")],
    )
    sync >> alert


def with_crm(frames: dict[str, Any], context: Any) -> Any:
    """Join the database's top accounts with their HubSpot contacts (the CRM's view of them)."""
    import pandas as pd

    from airflow_opsflow.hooks.hubspot import HubSpotHook

    crm = pd.DataFrame(HubSpotHook("hubspot_default").objects("contacts", ["email", "lifecyclestage", "churn_risk"]),
                       columns=["id", "email", "lifecyclestage", "churn_risk"])
    top = frames["accounts"].merge(crm.drop(columns=["id"]), on="email", how="left")
    top["in_crm"] = top["lifecyclestage"].notna() | top["churn_risk"].notna()
    return top[["name", "plan", "lifetime_spend", "last_payment_at", "churn_risk", "lifecyclestage", "in_crm"]]


with DAG(
    dag_id="cs_account_review",
    schedule="0 8 * * 1",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"conn_id": Param("ops_db", type="string")},
    user_defined_macros=MACROS,
    tags=["opsflow", "example", "customer-success", "reports"],
    doc_md=__doc__,
) as review:
    ReportOperator(
        task_id="top_accounts",
        conn_id="{{ params.conn_id }}",
        queries={"accounts": "SELECT * FROM ({{ customer_spend }}) AS spend ORDER BY lifetime_spend DESC LIMIT 25"},
        transform=with_crm,
        title="Top 25 accounts and what the CRM says, week of {{ dag_run.run_after.strftime('%Y-%m-%d') }}",
        files=("xlsx",),
        deliver=[SlackReport(channel="#customer-success"), EmailReport(to=["account-managers@example.com"])],
    )
