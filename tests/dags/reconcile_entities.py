"""Test DAG: every paying customer of the warehouse in Salesforce with the right tier, each missing or
different customer tracked as an entity across runs and alerted in Slack."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.slack import SlackAlert
from airflow_opsflow.operators.data_check import DataCheckOperator

with DAG("test_reconcile_entities", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
         catchup=False, params={"warehouse": Param("opsflow_sqlite", type="string")}) as dag:
    DataCheckOperator(
        task_id="customers_in_crm",
        conn_id="{{ params.warehouse }}",
        checks="""
        - kind: reconcile
          name: paying_customers_in_salesforce
          description: every paying customer in the warehouse exists in Salesforce with the right tier
          owner: revops
          severity: warn
          left:
            sql: >
              SELECT customer_id AS Customer_Id__c, tier AS Tier__c, arr, paying_since
              FROM customers WHERE plan = 'pro'
            label: warehouse
          right:
            salesforce: {soql: "SELECT Customer_Id__c, Tier__c FROM Account WHERE Type = 'Customer - Direct'"}
          key: Customer_Id__c
          compare: [Tier__c]
          expect: left_in_right
          entity:
            amount: arr
            since: paying_since
            sla: 48h
            noun: customer
        """,
        alerts=[SlackAlert(conn_id="slack_api_default", channel="#ops")],
    )
