"""Test DAG: freshness judged at the run's time, by DataCheckOperator and by DataConditionSensor (poked and
deferred)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.operators.data_check import DataCheckOperator
from airflow_opsflow.sensors.data_condition import DataConditionSensor

CONN = "{{ params.conn_id }}"
RULES = """
table: loads
checks:
  - kind: freshness
    name: loads_by_six
    column: loaded_at
    deadline: "06:00"
    calendar: {timezone: Europe/Berlin}
  - kind: freshness
    name: loads_recent
    column: loaded_at
    max_age: 12h
"""
DEADLINE_ONLY = """
table: loads
checks:
  - {kind: freshness, name: loads_by_six, column: loaded_at, deadline: "06:00", calendar: {timezone: Europe/Berlin}}
"""

with DAG("test_run_time", schedule=None, start_date=pendulum.datetime(2020, 1, 1, tz="UTC"), catchup=False,
         params={"conn_id": Param("opsflow_sqlite", type="string")}) as dag:
    DataCheckOperator(task_id="check", conn_id=CONN, checks=RULES)
    DataConditionSensor(task_id="poked", conn_id=CONN, checks=DEADLINE_ONLY, poke_interval=1, timeout=2,
                        mode="poke")
    DataConditionSensor(task_id="deferred", conn_id=CONN, checks=DEADLINE_ONLY, poke_interval=1, timeout=2,
                        deferrable=True)
