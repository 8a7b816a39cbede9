"""Test DAGs: ReverseSyncOperator into the recording HTTP API, the fake HubSpot and a database table."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, Param

from airflow_opsflow.destinations import DatabaseTable, HttpEndpoint, HubSpotObjects
from airflow_opsflow.operators.reverse_sync import ReverseSyncOperator
from airflow_opsflow.sync.mapping import Field

START = pendulum.datetime(2024, 1, 1, tz="UTC")
PARAMS = {"conn_id": Param("opsflow_pg", type="string"), "dry_run": Param(False, type="boolean"),
          "full_resync": Param(False, type="boolean")}
ACCOUNTS = Asset("opsflow://test/crm_accounts")
MAPPING = {"id": "account_id", "name": "name", "email": "email", "spend": {"column": "total_spend", "type": "decimal"},
           "tier": "tier", "since": {"column": "customer_since", "type": "date"}}
HIGH_PRIORITY = """
SELECT account_id, name, email, total_spend, tier, customer_since
FROM accounts WHERE total_spend >= 1000
"""

dags = {}
for mode in ("upsert", "insert", "update", "mirror"):
    with DAG(f"test_sync_http_{mode}", schedule=None, start_date=START, catchup=False, params=PARAMS) as dag:
        ReverseSyncOperator(
            task_id="push_accounts", conn_id="{{ params.conn_id }}", sql=HIGH_PRIORITY, primary_key="account_id",
            mapping=MAPPING, mode=mode, dry_run="{{ params.dry_run }}", full_resync="{{ params.full_resync }}",
            destination=HttpEndpoint("http_default", endpoint="/v1/accounts", batch_size=50,
                                     delete_endpoint="/v1/accounts/{{ key }}", idempotency_key=True),
            outlets=[ACCOUNTS], max_failed=None, max_failed_share=0.5,
        )
    dags[mode] = dag

with DAG("test_sync_strict", schedule=None, start_date=START, catchup=False, params=PARAMS) as strict_dag:
    ReverseSyncOperator(task_id="push_accounts", conn_id="{{ params.conn_id }}", table="accounts",
                        primary_key="account_id", mapping=MAPPING, retries=0,
                        destination=HttpEndpoint("http_default", endpoint="/v1/accounts", batch_size=20))

with DAG("test_sync_hubspot", schedule=None, start_date=START, catchup=False, params=PARAMS) as hubspot_dag:
    ReverseSyncOperator(
        task_id="companies", conn_id="{{ params.conn_id }}", sql=HIGH_PRIORITY, primary_key="account_id", mode="mirror",
        mapping={"account_key": "account_id", "name": "name", "domain": "email",
                 "total_spend": {"column": "total_spend", "type": "number"},
                 "tier": "tier", "customer_since": {"column": "customer_since", "type": "date"}},
        destination=HubSpotObjects("companies", id_property="account_key"), max_failed=None, max_failed_share=0.5,
    )

with DAG("test_sync_table", schedule=None, start_date=START, catchup=False, params=PARAMS) as table_dag:
    ReverseSyncOperator(
        task_id="to_table", conn_id="{{ params.conn_id }}", table="accounts", primary_key="account_id", mode="mirror",
        mapping={"account_id": "account_id", "name": "name", "spend": "total_spend", "tier": "tier"},
        destination=DatabaseTable("opsflow_pg", "crm_accounts", key="account_id", batch_size=40),
        max_delete_share=0.5,
    )

with DAG("test_sync_sharded", schedule=None, start_date=START, catchup=False, params=PARAMS) as sharded_dag:
    ReverseSyncOperator.partial(
        task_id="push_shard", conn_id="{{ params.conn_id }}", table="accounts", primary_key="account_id",
        mapping={"id": "account_id", "name": "name", "tier": "tier"},
        destination=HttpEndpoint("http_default", endpoint="/v1/accounts", batch_size=25),
    ).expand(shard=[(0, 3), (1, 3), (2, 3)])

with DAG("test_sync_per_invoice", schedule=None, start_date=START, catchup=False, params=PARAMS) as invoice_dag:
    ReverseSyncOperator(
        task_id="allocate", conn_id="{{ params.conn_id }}", primary_key="invoice_id", mode="insert",
        sql="SELECT invoice_id, account_id, amount FROM invoices WHERE status = 'failed'",
        mapping={"invoice": "invoice_id", "account": "account_id", "amount": Field("amount", "decimal")},
        destination=HttpEndpoint("http_default", endpoint="/v1/invoices/{{ record.invoice }}/allocate",
                                 batch_size=1, idempotency_key=True,
                                 body='{"account": {{ record.account | tojson }}, "amount": "{{ record.amount }}"}'),
    )

# A sync whose task is retried at once (a lost connection is retryable; the retry finishes the job).
with DAG("test_sync_retried", schedule=None, start_date=START, catchup=False,
         params={**PARAMS, "source": Param(HIGH_PRIORITY, type="string")}) as retried_dag:
    ReverseSyncOperator(
        task_id="push_accounts", conn_id="{{ params.conn_id }}", sql="{{ params.source }}", primary_key="account_id",
        mapping=MAPPING, retries=1, retry_delay=pendulum.duration(seconds=0),
        destination=HttpEndpoint("http_default", endpoint="/v1/accounts", batch_size=20, idempotency_key=True),
    )

# DestinationClient tables that are not there (or lack a mapped column): configuration errors, never retried.
with DAG("test_sync_table_missing", schedule=None, start_date=START, catchup=False, params=PARAMS) as missing_dag:
    for task_id, conn_id, table, mapping in (
            ("missing_pg", "opsflow_pg", "crm_missing", {"account_id": "account_id", "name": "name"}),
            ("missing_sqlite", "opsflow_sqlite", "crm_missing", {"account_id": "account_id", "name": "name"}),
            ("missing_column", "opsflow_pg", "crm_accounts", {"account_id": "account_id", "email": "email"})):
        ReverseSyncOperator(task_id=task_id, conn_id="{{ params.conn_id }}", table="accounts",
                            primary_key="account_id", mapping=mapping, retries=2,
                            retry_delay=pendulum.duration(seconds=0),
                            destination=DatabaseTable(conn_id, table, key="account_id"))
