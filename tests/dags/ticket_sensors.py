"""Test DAGs for TicketSensor: poke, reschedule and deferrable mode; ticket keys come from params."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param

from airflow_opsflow.sensors.ticket import TicketSensor

TICKETS = "{{ params.tickets }}"
ARGS = {"start_date": pendulum.datetime(2024, 1, 1, tz="UTC"), "catchup": False,
        "params": {"tickets": Param("", type="string")}}

with DAG("test_ticket_sensor_poke", schedule=None, **ARGS) as poke_dag:
    TicketSensor(task_id="poke", tickets=TICKETS, poke_interval=1, timeout=60, mode="poke")

with DAG("test_ticket_sensor_reschedule", schedule=None, **ARGS) as reschedule_dag:
    TicketSensor(task_id="reschedule", tickets=TICKETS, poke_interval=1, timeout=60, mode="reschedule")

with DAG("test_ticket_sensor_deferred", schedule=None, **ARGS) as deferred_dag:
    TicketSensor(task_id="deferred", tickets=TICKETS, poke_interval=1, timeout=60, deferrable=True)

with DAG("test_ticket_sensor_timeout", schedule=None, **ARGS) as timeout_dag:
    TicketSensor(task_id="never", tickets=TICKETS, poke_interval=1, timeout=3, deferrable=True)

with DAG("test_ticket_sensor_failures", schedule=None, **ARGS) as failures_dag:
    TicketSensor(task_id="poke", tickets=TICKETS, poke_interval=1, timeout=30)
    TicketSensor(task_id="deferred", tickets=TICKETS, poke_interval=1, timeout=30, deferrable=True)


def _push_tickets(params: dict[str, Any], ti: Any) -> None:
    """What DataCheckOperator pushes when its failing checks opened tickets (nothing when none did)."""
    keys = [k for k in params["tickets"].split(",") if k]
    if keys:
        ti.xcom_push(key="tickets", value=[{"key": k, "url": f"https://jira.example.com/browse/{k}"} for k in keys])


with DAG("test_ticket_sensor_upstream", schedule=None, **ARGS) as upstream_dag:
    check = PythonOperator(task_id="check", python_callable=_push_tickets)
    wait = TicketSensor(task_id="wait", upstream_task_id="check", poke_interval=1, timeout=60, deferrable=True)
    check >> wait
