"""Test DAG: a deadline alert (Airflow 3.1+) whose callback is IncidentNotifier, run by the triggerer.

Airflow stores the callback's kwargs with the serialized DAG, so the routes are named by a dotted path
(``ALERTS`` below, imported by the triggerer) rather than passed as objects."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, AsyncCallback, DeadlineAlert, DeadlineReference

from airflow_opsflow.alerts.slack import SlackAlert
from airflow_opsflow.notifiers.incident import IncidentNotifier

ALERTS = [SlackAlert(conn_id="slack_default")]
DESCRIPTION = "{{ dag_run.dag_id }} feeds the 07:00 finance report"

with DAG("test_deadline", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         deadline=DeadlineAlert(
             reference=DeadlineReference.DAGRUN_QUEUED_AT,
             interval=timedelta(seconds=1),
             callback=AsyncCallback(IncidentNotifier,
                                    kwargs={"alerts": "tests.dags.deadline.ALERTS", "description": DESCRIPTION}),
         )) as dag:
    EmptyOperator(task_id="load")
