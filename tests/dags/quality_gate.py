"""Test DAGs: quality gates whose asset gets events without a verdict, or with a lenient requirement."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset

from airflow_opsflow.operators.quality_gate import QualityGateOperator

START = pendulum.datetime(2024, 1, 1, tz="UTC")
PLAIN = Asset(name="plain_table", uri="opsflow://test/plain_table")

with DAG("test_gate_plain_producer", schedule=None, start_date=START, catchup=False) as plain_producer:
    EmptyOperator(task_id="load", outlets=[PLAIN])  # an event, but no check verdict on it

with DAG("test_gate_plain_consumer", schedule=None, start_date=START, catchup=False) as plain_consumer:
    QualityGateOperator(task_id="gate", asset=PLAIN, retries=0) >> EmptyOperator(task_id="after")

with DAG("test_gate_no_event", schedule=None, start_date=START, catchup=False) as no_event:
    QualityGateOperator(task_id="gate", asset=Asset(name="never_written", uri="opsflow://test/never_written")) \
        >> EmptyOperator(task_id="after")
