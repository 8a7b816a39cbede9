"""Test DAG: IncidentNotifier on a plain task's callbacks, alerting through a Slack webhook."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.slack import SlackAlert
from airflow_opsflow.notifiers.incident import send_incident_alert

ALERTS = [SlackAlert(conn_id="slack_default")]


def load(**context: Any) -> None:
    if context["params"]["fail"]:
        raise RuntimeError("the supplier file for today is missing")


with DAG("test_notifier", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         params={"fail": Param(True, type="boolean")}) as dag:
    PythonOperator(
        task_id="load_supplier_file",
        python_callable=load,
        on_failure_callback=send_incident_alert(alerts=ALERTS, description="Supplier prices are not loaded"),
        on_success_callback=send_incident_alert(alerts=ALERTS, resolve=True),
    )
