"""Test DAGs: reports merging a warehouse table with Salesforce Accounts (SOQL) or Zendesk tickets (incremental
export), delivered to Slack and by email."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.operators.report import ReportOperator
from airflow_opsflow.report_deliveries import EmailReport, SlackReport

START = pendulum.datetime(2024, 1, 1, tz="UTC")
PARAMS = {"warehouse": Param("opsflow_sqlite", type="string"), "customers": Param("customers", type="string")}


def _deliver() -> list[SlackReport | EmailReport]:
    return [SlackReport(channel="#ops"), EmailReport(to="ops@example.com")]


with DAG("test_report_salesforce", schedule=None, start_date=START, catchup=False, params=PARAMS) as salesforce_dag:
    ReportOperator(
        task_id="report",
        conn_id="{{ params.warehouse }}",
        queries={
            "spend": "SELECT customer_id, spend FROM {{ params.customers }}",
            # the staged table is named after the object; SQLite SQL renames Salesforce's fields there
            "accounts": {"salesforce": {"soql": "SELECT Customer_Id__c, Tier__c FROM Account "
                                                "WHERE Type = 'Customer - Direct'"},
                         "sql": "SELECT Customer_Id__c AS customer_id, Tier__c AS tier FROM Account"},
        },
        steps=[
            {"op": "merge", "right": "accounts", "on": ["customer_id"], "how": "inner"},
            {"op": "group", "by": ["tier"], "agg": {"accounts": ["customer_id", "count"],
                                                    "spend": ["spend", "sum"]}},
            {"op": "sort", "by": ["spend"], "ascending": False},
        ],
        title="Spend by Salesforce tier",
        filename="spend_by_tier",
        deliver=_deliver(),
    )

with DAG("test_report_zendesk", schedule=None, start_date=START, catchup=False, params=PARAMS) as zendesk_dag:
    ReportOperator(
        task_id="report",
        conn_id="{{ params.warehouse }}",
        queries={
            "customers": "SELECT customer_id, zendesk_org_id, spend FROM {{ params.customers }}",
            "tickets": {"zendesk": {"export": "tickets", "page_size": 2},
                        "sql": "SELECT organization_id AS zendesk_org_id, id AS ticket_id FROM tickets "
                               "WHERE status IN ('new', 'open', 'pending', 'hold') "
                               "AND organization_id IS NOT NULL"},
        },
        steps=[
            {"op": "merge", "right": "tickets", "on": ["zendesk_org_id"], "how": "inner"},
            {"op": "group", "by": ["customer_id"], "agg": {"open_tickets": ["ticket_id", "count"],
                                                           "spend": ["spend", "first"]}},
            {"op": "sort", "by": ["spend"], "ascending": False},
        ],
        title="Open Zendesk tickets by customer spend",
        filename="open_tickets",
        deliver=_deliver(),
    )
