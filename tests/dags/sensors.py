"""Test DAGs for DataConditionSensor in poke, reschedule and deferrable mode."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.sensors.data_condition import DataConditionSensor

CONN = "{{ params.conn_id }}"
ARGS = {"start_date": pendulum.datetime(2024, 1, 1, tz="UTC"), "catchup": False,
        "params": {"conn_id": Param("opsflow_sqlite", type="string")}}

with DAG("test_sensor_modes", schedule=None, **ARGS) as modes_dag:
    DataConditionSensor(task_id="poke", conn_id=CONN, table="arrivals", where="day = '2024-01-02'",
                        min_rows=2, poke_interval=1, timeout=60, mode="poke")
    DataConditionSensor(task_id="reschedule", conn_id=CONN, table="arrivals", where="day = '2024-01-02'",
                        min_rows=2, poke_interval=1, timeout=60, mode="reschedule")

with DAG("test_sensor_deferred", schedule=None, **ARGS) as deferred_dag:
    DataConditionSensor(task_id="deferred", conn_id=CONN, table="arrivals", where="day = '2024-01-02'",
                        min_rows=2, poke_interval=1, timeout=60, deferrable=True)

with DAG("test_sensor_deferred_sql", schedule=None, **ARGS) as deferred_sql_dag:
    DataConditionSensor(task_id="deferred_sql", conn_id=CONN, poke_interval=1, timeout=60, deferrable=True,
                        sql="SELECT COUNT(*) >= 2 FROM arrivals WHERE day = '2024-01-02'")

with DAG("test_sensor_fresh", schedule=None, **ARGS) as fresh_dag:
    DataConditionSensor(task_id="fresh", conn_id=CONN, table="payments", freshness_column="created_at",
                        max_age="2h", poke_interval=1, timeout=30)

with DAG("test_sensor_timeout", schedule=None, **ARGS) as timeout_dag:
    DataConditionSensor(task_id="never", conn_id=CONN, table="arrivals", where="day = '1999-01-01'",
                        poke_interval=1, timeout=3, deferrable=True)

with DAG("test_sensor_broken", schedule=None, **ARGS) as broken_dag:
    DataConditionSensor(task_id="broken", conn_id=CONN, table="arrivals", where="no_such_column = 1",
                        poke_interval=1, timeout=30)
