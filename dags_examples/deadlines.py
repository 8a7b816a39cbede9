"""Example DAG: a deadline alert (Airflow 3.1+) that opens an opsflow incident when a run is late.

``nightly_warehouse_load`` feeds the 07:00 finance report. A run still going two hours after it was queued
opens the DAG's ``deadline_missed`` incident through ``IncidentNotifier``: one Slack message in
``#finance-ops`` and one email, saying which run missed the deadline and by how much; later misses are
occurrences of the same incident (``remind_every_runs`` to hear of each). The callback runs in the
triggerer; its arguments are stored with the serialized DAG, so the routes are named by dotted path
(``alert_routes.FINANCE_ONCALL``, a module of this folder, which is on every Airflow process's path).

Deadlines are evaluated by the scheduler and their callbacks run by the triggerer: ``dag.test()`` runs
neither (tests/notifications/test_deadline_scheduler.py runs a real scheduler and triggerer).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, AsyncCallback, DeadlineAlert, DeadlineReference

from airflow_opsflow.notifiers.incident import IncidentNotifier

with DAG(
    "nightly_warehouse_load",
    schedule="0 3 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="Europe/Berlin"),
    catchup=False,
    tags=["opsflow", "example", "deadline"],
    doc_md=__doc__,
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(hours=2),
        callback=AsyncCallback(IncidentNotifier, kwargs={
            "alerts": "alert_routes.FINANCE_ONCALL",
            "description": "{{ dag_run.dag_id }} feeds the 07:00 finance report"}),
    ),
) as dag:
    BashOperator(task_id="load", bash_command="echo 'the nightly load runs here'")
