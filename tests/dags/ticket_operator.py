"""Test DAG: a check task without alerts, then TicketOperator turning its results into tickets."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.jira import JiraTicket
from airflow_opsflow.operators.data_check import DataCheckOperator
from airflow_opsflow.operators.ticket import TicketOperator

TICKET = JiraTicket(project="OPS", conn_id="opsflow_jira_default", labels=("logistics",), issue_type="Incident",
                    components=("pipelines",), fields={"customfield_10010": "Payments"},
                    priorities={"error": "Highest", "warn": "Low"})

with DAG("test_ticket_operator", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         params={"conn_id": Param("opsflow_sqlite", type="string")}) as dag:
    check = DataCheckOperator(task_id="check_payments", conn_id="{{ params.conn_id }}", table="payments", checks=[
        {"name": "amount_positive", "kind": "between", "column": "amount", "min": 0, "min_exclusive": True},
        {"name": "customer_exists", "kind": "foreign_key", "column": "customer_id", "to_table": "customers",
         "to_column": "id"},
    ])
    per_check = TicketOperator(task_id="tickets_per_check", check_task_id="check_payments", ticket=TICKET)
    per_task = TicketOperator(task_id="ticket_per_task", check_task_id="check_payments", group_by="task",
                              ticket=JiraTicket(project="FIN", conn_id="opsflow_jira_default"))
    explicit = TicketOperator(task_id="explicit", ticket=TICKET, severity="warn",
                              summary="Reconcile payments of {{ ds }} by hand",
                              description="The allocation job skipped run {{ run_id }}.")
    check >> [per_check, per_task]

CUTOFF = "{{ (data_interval_end - macros.timedelta(hours=48)).strftime('%Y-%m-%d %H:%M:%S') }}"

with DAG("test_ticket_per_entity", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
         catchup=False, params={"conn_id": Param("opsflow_sqlite", type="string")}) as entity_dag:
    stuck = DataCheckOperator(task_id="check_deliveries", conn_id="{{ params.conn_id }}", table="deliveries", checks=[
        {"name": "no_stuck_deliveries", "kind": "expression", "where": "status = 'in_transit'",
         "expression": f"status_changed_at >= '{CUTOFF}'", "on_empty": "pass", "sample_limit": 100,
         "sample_columns": ["id", "order_ref", "carrier", "status_changed_at"]},
    ])
    stuck >> TicketOperator(task_id="ticket_per_delivery", check_task_id="check_deliveries", group_by="entity",
                            entity_column="id", ticket=TICKET)
