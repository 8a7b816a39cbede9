"""Example DAG: a reverse sync whose risky plans wait for a person (Airflow 3.1+ human-in-the-loop).

* ``crm_accounts_with_approval``: mirror the high-priority accounts into the CRM's REST API every hour. A
  run that would delete more than 5% of the synced accounts, or change (and delete) more than 20% of them,
  stops at the ``approve`` task, showing its plan (counts, sample field diffs, expected requests, the keys
  it would delete) in Airflow's *Required Actions* page. "Approve" sends exactly that plan, if the source
  still yields it; "Reject" sends nothing. Plans within the limits go through without asking.

Connections: ``ops_db`` (any SQL connection), ``crm_api`` (type ``http``), and a state database
(``[opsflow] state_conn_id``). See docs/sync.md, "Approval of risky syncs".
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_opsflow.destinations import HttpEndpoint
from airflow_opsflow.operators.approved_sync import approved_sync
from airflow_opsflow.sync.mapping import Field

with DAG(
    "crm_accounts_with_approval",
    schedule="@hourly",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["opsflow", "reverse-etl", "approval"],
) as dag:
    approved_sync(
        "accounts",
        conn_id="ops_db",
        sql="sql/high_priority_accounts.sql",
        primary_key="account_id",
        mode="mirror",
        mapping={"id": "account_id", "name": "name", "plan": "plan", "spend": Field("total_spend", "number")},
        destination=HttpEndpoint("crm_api", endpoint="/v1/accounts", delete_endpoint="/v1/accounts/{{ key }}",
                                 idempotency_key=True),
        max_delete_share=0.05,
        max_change_share=0.2,
        response_timeout=timedelta(hours=8),  # unanswered by then: the approval fails, nothing is sent
    )
