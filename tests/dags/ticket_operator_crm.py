"""Test DAGs: a check task without alerts, then TicketOperator filing its results as HubSpot tickets,
Salesforce Cases or Zendesk tickets (one DAG per system)."""

from __future__ import annotations

from collections.abc import Callable

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.hubspot import HubSpotTicket
from airflow_opsflow.alerts.salesforce import SalesforceCase
from airflow_opsflow.alerts.zendesk import ZendeskTicket
from airflow_opsflow.incidents.tickets import TicketRoute
from airflow_opsflow.operators.data_check import DataCheckOperator
from airflow_opsflow.operators.ticket import TicketOperator

# unconfirmed_create_wait=0: the tests keep HubSpot's search without lag, and Salesforce's SOQL and Zendesk's
# list by external_id are consistent, so a retry after a lost create answer finds the ticket at once.
ROUTES: dict[str, Callable[[], TicketRoute]] = {
    "hubspot": lambda: HubSpotTicket(conn_id="hubspot_default", unconfirmed_create_wait=0),
    "salesforce": lambda: SalesforceCase(conn_id="salesforce_default", fields={"Origin": "Web"},
                                         unconfirmed_create_wait=0),
    "zendesk": lambda: ZendeskTicket(conn_id="zendesk_default", tags=("payments",), unconfirmed_create_wait=0),
}

dags: dict[str, DAG] = {}
for system, route in ROUTES.items():
    with DAG(f"test_ticket_operator_crm_{system}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
             catchup=False, params={"conn_id": Param("opsflow_sqlite", type="string")}) as dag:
        check = DataCheckOperator(task_id="check_payments", conn_id="{{ params.conn_id }}", table="payments", checks=[
            {"name": "amount_positive", "kind": "between", "column": "amount", "min": 0, "min_exclusive": True},
            {"name": "customer_exists", "kind": "foreign_key", "column": "customer_id", "to_table": "customers",
             "to_column": "id"},
        ])
        check >> TicketOperator(task_id="tickets", check_task_id="check_payments", ticket=route(), retries=2,
                                retry_delay=pendulum.duration(seconds=0))
    dags[system] = dag
