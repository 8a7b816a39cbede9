"""Test DAGs for faults on the Salesforce and Zendesk ticket routes of DataCheckOperator(alerts=[...]).

``unconfirmed_create_wait=0``: both systems find a ticket consistently (SOQL; Zendesk's list by external_id),
so a try after an unanswered create needs no polling for a lagging index (and the tests wait on no clock).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.salesforce import SalesforceCase
from airflow_opsflow.alerts.zendesk import ZendeskTicket
from airflow_opsflow.incidents.tickets import TicketRoute
from airflow_opsflow.operators.data_check import DataCheckOperator

START = pendulum.datetime(2024, 1, 1, tz="UTC")
AMOUNT_POSITIVE: dict[str, Any] = {"name": "amount_positive", "kind": "between", "column": "amount", "min": 0,
                   "min_exclusive": True, "sample_columns": ["id", "amount"]}
# Three checks that fail on the seeded payments: three new incidents in one run.
THREE_CHECKS: list[dict[str, Any]] = [AMOUNT_POSITIVE,
                {"name": "customer_exists", "kind": "foreign_key", "column": "customer_id", "to_table": "customers",
                 "to_column": "id"},
                {"name": "amount_at_least_one", "kind": "between", "column": "amount", "min": 1}]
ZENDESK_FIELD = 360_001  # a custom ticket field id (what the Zendesk admin's field would have)


def _dag(dag_id: str, route: TicketRoute, checks: list[dict[str, Any]] | None = None) -> DAG:
    with DAG(dag_id, schedule=None, start_date=START, catchup=False,
             params={"conn_id": Param("opsflow_sqlite", type="string")}) as dag:
        DataCheckOperator(task_id="check_payments", conn_id="{{ params.conn_id }}", table="payments",
                          checks=checks or [AMOUNT_POSITIVE], alerts=[route], retries=2,
                          retry_delay=pendulum.duration(seconds=0))
    return dag


salesforce_dag = _dag("test_faults_salesforce", SalesforceCase(conn_id="salesforce_default",
                                                               fields={"Origin": "Web"}, unconfirmed_create_wait=0))
salesforce_three_dag = _dag("test_faults_salesforce_three", SalesforceCase(conn_id="salesforce_default",
                                                                           unconfirmed_create_wait=0), THREE_CHECKS)
# The org has no such field: its admin never created the marker field this route was told to use.
salesforce_no_marker_dag = _dag("test_faults_salesforce_no_marker",
                                SalesforceCase(conn_id="salesforce_default", fingerprint_field="Opsflow_Incident__c",
                                               unconfirmed_create_wait=0))
# Neither "Triage" nor "Resolved" is in the org's Case Status picklist (New, Working, Escalated, Closed).
salesforce_bad_open_dag = _dag("test_faults_salesforce_bad_open",
                               SalesforceCase(conn_id="salesforce_default", open_status="Triage",
                                              unconfirmed_create_wait=0))
salesforce_bad_closed_dag = _dag("test_faults_salesforce_bad_closed",
                                 SalesforceCase(conn_id="salesforce_default", closed_status="Resolved",
                                                unconfirmed_create_wait=0))
zendesk_dag = _dag("test_faults_zendesk", ZendeskTicket(conn_id="zendesk_default", tags=("payments",),
                                                        custom_fields={ZENDESK_FIELD: "PAY-0042"},
                                                        unconfirmed_create_wait=0))
