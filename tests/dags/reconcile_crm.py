"""Test DAGs: the warehouse reconciled against the CRM and the support desk (HubSpot, Salesforce, Zendesk), and a
report joining the warehouse with HubSpot."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.operators.data_check import DataCheckOperator
from airflow_opsflow.operators.report import ReportOperator
from airflow_opsflow.report_deliveries import SlackReport

with DAG("test_reconcile_crm", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         params={"warehouse": Param("opsflow_sqlite", type="string"),
                 "customers": Param("customers", type="string"),
                 "soql": Param("SELECT Customer_Id__c, Tier__c FROM Account WHERE Type = 'Customer - Direct'",
                               type="string"),
                 "page_size": Param(2, type="integer")}) as dag:
    DataCheckOperator(
        task_id="reconcile_crm",
        conn_id="{{ params.warehouse }}",
        checks=[
            {
                "kind": "reconcile",
                "name": "paying_customers_in_salesforce",
                "description": "every paying customer in the warehouse exists in Salesforce with the right tier",
                "left": {"sql": "SELECT customer_id AS Customer_Id__c, tier AS Tier__c FROM {{ params.customers }} "
                                "WHERE plan = 'pro'", "label": "warehouse"},
                "right": {"salesforce": {"soql": "{{ params.soql }}"}},
                "key": "Customer_Id__c",
                "compare": ["Tier__c"],
                "expect": "left_in_right",
            },
            {
                "kind": "reconcile",
                "name": "companies_in_hubspot",
                "left": {"table": "{{ params.customers }}", "label": "warehouse"},
                "right": {"hubspot": {"object": "companies", "properties": ["domain", "tier"],
                                      "page_size": "{{ params.page_size }}"}},
                "key": "domain",
                "compare": ["tier"],
            },
            {
                "kind": "reconcile",
                "name": "no_open_ticket_of_a_churned_account",
                "left": {"sql": "SELECT zendesk_org_id AS organization_id FROM {{ params.customers }} "
                                "WHERE plan = 'churned'", "label": "churned accounts"},
                "right": {"zendesk": {"export": "tickets", "page_size": "{{ params.page_size }}"},
                          "where": "status IN ('new', 'open', 'pending', 'hold')", "label": "open tickets"},
                "key": "organization_id",
                "expect": "disjoint",
            },
        ],
    )

with DAG("test_report_crm", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         params={"warehouse": Param("opsflow_sqlite", type="string")}) as report_dag:
    ReportOperator(
        task_id="report",
        conn_id="{{ params.warehouse }}",
        queries={"customers": "SELECT domain, tier FROM customers WHERE plan = 'pro'",
                 "crm": {"hubspot": {"object": "companies", "properties": ["domain", "tier"], "page_size": 5},
                         "sql": "SELECT domain, tier AS crm_tier FROM companies"}},
        steps=[{"op": "merge", "right": "crm", "on": ["domain"]}],
        title="Tiers: warehouse and HubSpot",
        deliver=[SlackReport(channel="#ops")],
    )
