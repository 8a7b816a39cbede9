"""Test DAGs for TicketSensor with HubSpot, Salesforce and Zendesk: a payments check opens a ticket, a sensor
waits (poke or deferred) until someone closes it; TicketOperator files an explicit Zendesk ticket; a sensor
fails on tickets the system does not know."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.hubspot import HubSpotTicket
from airflow_opsflow.alerts.salesforce import SalesforceCase
from airflow_opsflow.alerts.zendesk import ZendeskTicket
from airflow_opsflow.incidents.tickets import TicketRoute
from airflow_opsflow.operators.data_check import DataCheckOperator
from airflow_opsflow.operators.ticket import TicketOperator
from airflow_opsflow.sensors.ticket import TicketSensor

START = pendulum.datetime(2024, 1, 1, tz="UTC")
ROUTES: dict[str, Callable[[], TicketRoute]] = {
    "hubspot": lambda: HubSpotTicket(conn_id="hubspot_default", unconfirmed_create_wait=5),
    "salesforce": lambda: SalesforceCase(conn_id="salesforce_default", fields={"Origin": "Web"}),
    "zendesk": lambda: ZendeskTicket(conn_id="zendesk_default", tags=("payments",)),
}
RETRIES: dict[str, Any] = {"retries": 2, "retry_delay": pendulum.duration(seconds=0)}
MODES: dict[str, dict[str, Any]] = {"poke": {"mode": "poke"}, "reschedule": {"mode": "reschedule"},
                                    "deferred": {"deferrable": True}}

# (system, mode) -> check_payments >> wait
wait_dags: dict[tuple[str, str], DAG] = {}
for system, route in ROUTES.items():
    for mode, how in MODES.items():
        with DAG(f"test_ticket_sensor_{system}_{mode}", schedule=None, start_date=START, catchup=False,
                 params={"conn_id": Param("opsflow_sqlite", type="string")}) as dag:
            check = DataCheckOperator(
                task_id="check_payments", conn_id="{{ params.conn_id }}", table="payments",
                checks=[{"name": "amount_positive", "kind": "between", "column": "amount", "min": 0,
                         "min_exclusive": True, "sample_columns": ["id", "amount"]}],
                alerts=[route()])
            # all_done: the failed check is exactly when its ticket is worth waiting for
            check >> TicketSensor(task_id="wait", upstream_task_id="check_payments", ticket=route(),
                                  trigger_rule="all_done", poke_interval=1, timeout=60, **how)
        wait_dags[(system, mode)] = dag

with DAG("test_ticket_operator_zendesk", schedule=None, start_date=START, catchup=False) as explicit_dag:
    TicketOperator(task_id="explicit", ticket=ROUTES["zendesk"](), severity="warn",
                   summary="Reconcile payments of {{ ds }} by hand",
                   description="The allocation job skipped run {{ run_id }}.") >> TicketSensor(
        task_id="wait", upstream_task_id="explicit", ticket=ROUTES["zendesk"](), poke_interval=1, timeout=60)

# tickets given by id (params), for failures: one DAG per system, a poking and a deferred sensor that may retry
failure_dags: dict[str, DAG] = {}
for system, route in ROUTES.items():
    with DAG(f"test_ticket_sensor_{system}_failures", schedule=None, start_date=START, catchup=False,
             params={"tickets": Param("", type="string")}) as dag:
        TicketSensor(task_id="poke", tickets="{{ params.tickets }}", ticket=route(), poke_interval=1, timeout=30,
                     **RETRIES)
        TicketSensor(task_id="deferred", tickets="{{ params.tickets }}", ticket=route(), poke_interval=1,
                     timeout=30, deferrable=True, **RETRIES)
    failure_dags[system] = dag

with DAG("test_ticket_sensor_zendesk_timeout", schedule=None, start_date=START, catchup=False,
         params={"tickets": Param("", type="string")}) as timeout_dag:
    TicketSensor(task_id="never", tickets="{{ params.tickets }}", ticket=ROUTES["zendesk"](), poke_interval=1,
                 timeout=3, deferrable=True)
