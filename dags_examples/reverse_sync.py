"""Example DAGs: reverse ETL with ReverseSyncOperator.

* ``crm_high_priority_accounts``: rank accounts by total spend where the data lives and mirror the
  high-priority ones into HubSpot companies (created, updated, archived when they drop out), then call the
  billing API once per invoice that does not add up (``/v1/invoices/<id>/regenerate``, idempotent).
* ``crm_contacts_sharded``: one big sync fanned out over mapped tasks (``shard=(i, n)``), each shard with
  its own state, for Celery/Kubernetes workers.

Connections: ``ops_db`` (any SQL connection; trigger with ``{"conn_id": ...}`` for another),
``hubspot_default`` (type ``opsflow_hubspot``: a private app's access token), ``billing_api`` and
``crm_api`` (type ``http``), and a state database (``[opsflow] state_conn_id``). ``make demo`` runs the
first one against local stand-ins.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, Param

from airflow_opsflow.destinations import HttpEndpoint, HubSpotObjects
from airflow_opsflow.operators.reverse_sync import ReverseSyncOperator
from airflow_opsflow.sync.mapping import Field

HIGH_PRIORITY = Asset("hubspot://companies/high-priority-accounts")

with DAG(
    "crm_high_priority_accounts",
    schedule="@hourly",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"conn_id": Param("ops_db", type="string"), "dry_run": Param(False, type="boolean")},
    tags=["opsflow", "reverse-etl"],
) as dag:
    accounts = ReverseSyncOperator(
        task_id="sync_high_priority_accounts",
        conn_id="{{ params.conn_id }}",
        sql="sql/high_priority_accounts.sql",
        primary_key="account_id",
        mode="mirror",  # accounts that fall below the bar are archived in HubSpot
        mapping={
            "opsflow_account_id": "account_id",
            "name": "name",
            "plan": "plan",
            "total_spend": Field("total_spend", "number"),
            "spend_rank": Field("spend_rank", "integer"),
            "priority": "priority",
        },
        destination=HubSpotObjects("companies", id_property="opsflow_account_id"),
        dry_run="{{ params.dry_run }}",
        outlets=[HIGH_PRIORITY],
    )
    invoices = ReverseSyncOperator(
        task_id="regenerate_broken_invoices",
        conn_id="{{ params.conn_id }}",
        sql="""
            SELECT id, invoice_number, customer_id, subtotal, tax, total
            FROM invoices
            WHERE ABS(total - (subtotal + tax)) > 0.005
        """,
        primary_key="id",
        mapping={"invoice_id": "id", "number": "invoice_number", "customer_id": "customer_id",
                 "expected_total": Field("subtotal", "decimal"), "tax": Field("tax", "decimal"),
                 "billed_total": Field("total", "decimal")},
        destination=HttpEndpoint("billing_api", endpoint="/v1/invoices/{{ record.invoice_id }}/regenerate",
                                 batch_size=1, idempotency_key=True),  # safe to retry: applied once
        max_failed=None, max_failed_share=0.5,
    )
    accounts >> invoices

with DAG(
    "crm_contacts_sharded",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"conn_id": Param("ops_db", type="string")},
    tags=["opsflow", "reverse-etl"],
) as sharded_dag:
    ReverseSyncOperator.partial(
        task_id="sync_contacts",
        conn_id="{{ params.conn_id }}",
        table="customers",
        primary_key="id",
        mapping={"external_id": "id", "name": "name", "email": "email", "country": "country", "plan": "plan"},
        destination=HttpEndpoint("crm_api", endpoint="/v1/contacts/batch", batch_size=100),
        concurrency=2,
    ).expand(shard=[(i, 4) for i in range(4)])
