"""Test DAG: an entity check of overdue invoices, then a HubSpot ticket per customer, associated with the
customer's company and contact (found by their ``customer_id`` property) when HubSpot has them."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.hubspot import HubSpotTicket
from airflow_opsflow.operators.data_check import DataCheckOperator
from airflow_opsflow.operators.ticket import TicketOperator

with DAG("test_hubspot_ticket_associations", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
         catchup=False, params={"conn_id": Param("opsflow_sqlite", type="string")}) as dag:
    check = DataCheckOperator(
        task_id="check_invoices",
        conn_id="{{ params.conn_id }}",
        table="invoices",
        checks=[{"name": "no_overdue_invoices", "kind": "expression", "expression": "status <> 'overdue'",
                 "sample_limit": 100, "sample_columns": ["invoice_id", "customer_id", "amount"],
                 "entity": {"key": "customer_id", "amount": "amount", "noun": "customer with overdue invoices"}}],
    )
    check >> TicketOperator(
        task_id="tickets",
        check_task_id="check_invoices",
        group_by="entity",
        entity_column="customer_id",
        ticket=HubSpotTicket(conn_id="hubspot_default", associate={"companies": "customer_id",
                                                                   "contacts": "customer_id"},
                             unconfirmed_create_wait=0),
        retries=1,
        retry_delay=pendulum.duration(seconds=0),
    )
