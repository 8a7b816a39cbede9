"""Test DAGs: ReverseSyncOperator into Salesforce Accounts (the fake org), by the external id Warehouse_Id__c,
through sObject Collections, Bulk API 2.0 or the automatic choice; mirror mode; one sharded over mapped tasks."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.destinations.salesforce import SalesforceObjects
from airflow_opsflow.operators.reverse_sync import ReverseSyncOperator
from airflow_opsflow.sync.mapping import Field

START = pendulum.datetime(2024, 1, 1, tz="UTC")
PARAMS = {"conn_id": Param("opsflow_pg", type="string"), "dry_run": Param(False, type="boolean"),
          "full_resync": Param(False, type="boolean")}
MAPPING: dict[str, str | Field] = {
    "Warehouse_Id__c": Field("account_id", "string"), "Name": "name", "Tier__c": "tier",
    "Total_Spend__c": Field("total_spend", "decimal"), "Customer_Since__c": Field("customer_since", "date")}

# by name: the destination's settings, and the operator's batch_size (auto_2500: the automatic choice with a
# lower Bulk threshold and batches of 2,500, so that a run larger than one batch stays small enough for the fake
# org; auto_low: the same threshold with the default batches of up to 100,000)
VARIANTS: dict[str, dict[str, Any]] = {
    "collections": {"api": "collections"}, "bulk": {"api": "bulk"}, "auto": {"api": "auto"},
    "auto_2500": {"api": "auto", "bulk_threshold": 2500, "batch_size": 2500},
    "auto_low": {"api": "auto", "bulk_threshold": 2500}}
dags = {}
for variant, given in VARIANTS.items():
    settings = {k: v for k, v in given.items() if k != "batch_size"}
    with DAG(f"test_salesforce_sync_{variant}", schedule=None, start_date=START, catchup=False,
             params=PARAMS) as dag:
        ReverseSyncOperator(
            task_id="accounts", conn_id="{{ params.conn_id }}", table="sf_accounts", primary_key="account_id",
            mapping=MAPPING, mode="mirror", dry_run="{{ params.dry_run }}", full_resync="{{ params.full_resync }}",
            destination=SalesforceObjects("Account", "Warehouse_Id__c", **settings),
            max_failed=None, max_failed_share=0.5, retries=0, batch_size=given.get("batch_size"),
        )
    dags[variant] = dag

with DAG("test_salesforce_sync_sharded", schedule=None, start_date=START, catchup=False,
         params=PARAMS) as sharded_dag:
    ReverseSyncOperator.partial(
        task_id="accounts_shard", conn_id="{{ params.conn_id }}", table="sf_accounts", primary_key="account_id",
        mapping=MAPPING, destination=SalesforceObjects("Account", "Warehouse_Id__c", api="collections"), retries=0,
    ).expand(shard=[(0, 3), (1, 3), (2, 3)])
