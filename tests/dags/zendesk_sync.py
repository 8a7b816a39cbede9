"""Test DAGs: ReverseSyncOperator into the fake Zendesk's organizations (mirror) and users (upsert)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.destinations.zendesk import ZendeskObjects
from airflow_opsflow.operators.reverse_sync import ReverseSyncOperator
from airflow_opsflow.sync.mapping import Field

START = pendulum.datetime(2024, 1, 1, tz="UTC")
PARAMS = {"conn_id": Param("zd_source", type="string"), "dry_run": Param(False, type="boolean"),
          "full_resync": Param(False, type="boolean")}

with DAG("test_zendesk_organizations", schedule=None, start_date=START, catchup=False,
         params=PARAMS) as organizations_dag:
    ReverseSyncOperator(
        task_id="organizations", conn_id="{{ params.conn_id }}", table="accounts", primary_key="account_id",
        mode="mirror", dry_run="{{ params.dry_run }}", full_resync="{{ params.full_resync }}",
        # name and external_id are Zendesk's own fields; tier, total_spend, customer_since organization fields
        mapping={"external_id": "account_id", "name": "name", "tier": "tier",
                 "total_spend": Field("total_spend", "decimal"), "customer_since": Field("customer_since", "date")},
        destination=ZendeskObjects("organizations"), max_failed=None, max_failed_share=0.5,
    )

with DAG("test_zendesk_users", schedule=None, start_date=START, catchup=False, params=PARAMS) as users_dag:
    ReverseSyncOperator(
        task_id="users", conn_id="{{ params.conn_id }}", table="accounts", primary_key="account_id",
        dry_run="{{ params.dry_run }}", full_resync="{{ params.full_resync }}",
        mapping={"external_id": "account_id", "name": "name", "email": "email", "plan": "tier"},
        destination=ZendeskObjects("users", conn_id="zendesk_default"), max_failed=None, max_failed_share=0.5,
    )
