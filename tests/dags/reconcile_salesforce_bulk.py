"""Test DAG: the warehouse's customers reconciled against Salesforce Accounts read through a Bulk API 2.0 query job
(``bulk_above`` lower than the number of records)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.operators.data_check import DataCheckOperator

with DAG("test_reconcile_salesforce_bulk", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
         catchup=False, params={"warehouse": Param("opsflow_sqlite", type="string"),
                                "bulk_above": Param(10_000, type="integer")}) as dag:
    DataCheckOperator(
        task_id="reconcile_salesforce",
        conn_id="{{ params.warehouse }}",
        checks=[
            {
                "kind": "reconcile",
                "name": "customers_in_salesforce",
                "left": {"sql": "SELECT customer_id AS Customer_Id__c, tier AS Tier__c, seats AS Seats__c "
                                "FROM customers", "label": "warehouse"},
                "right": {"salesforce": {"soql": "SELECT Customer_Id__c, Tier__c, Seats__c FROM Account "
                                                 "WHERE Type = 'Customer - Direct'",
                                         "bulk_above": "{{ params.bulk_above }}"}},
                "key": "Customer_Id__c",
                "compare": ["Tier__c", "Seats__c"],
                "expect": "left_in_right",
            },
        ],
    )
