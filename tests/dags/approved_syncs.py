"""Test DAGs: the change guard and approval of risky syncs, into the recording HTTP API (tests/sync)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.destinations import HttpEndpoint
from airflow_opsflow.operators.approved_sync import approved_sync
from airflow_opsflow.operators.reverse_sync import ReverseSyncOperator

START = pendulum.datetime(2024, 1, 1, tz="UTC")
PATH = "/v1/accounts"
HIGH_PRIORITY = "SELECT account_id, name, tier FROM accounts WHERE total_spend >= 1000"
MAPPING = {"id": "account_id", "name": "name", "tier": "tier"}


def destination() -> HttpEndpoint:
    return HttpEndpoint("http_default", endpoint=PATH, batch_size=50, delete_endpoint=PATH + "/{{ key }}")


with DAG("test_sync_change_guard", schedule=None, start_date=START, catchup=False,
         params={"dry_run": Param(False, type="boolean")}) as change_guard_dag:
    ReverseSyncOperator(
        task_id="push_accounts", conn_id="opsflow_pg", sql=HIGH_PRIORITY, primary_key="account_id", mode="mirror",
        mapping=MAPPING, dry_run="{{ params.dry_run }}", destination=destination(), max_change_share=0.2, retries=2,
    )

with DAG("test_sync_approved", schedule=None, start_date=START, catchup=False) as approved_dag:
    approved_sync("accounts", conn_id="opsflow_pg", sql=HIGH_PRIORITY, primary_key="account_id", mode="mirror",
                  mapping=MAPPING, destination=destination(), retries=2)
