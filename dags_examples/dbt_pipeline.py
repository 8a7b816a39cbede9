"""Scenario 11: opsflow next to dbt. ``dbt build`` → dbt test failures as incidents (Slack, Jira) → opsflow
checks on the built models → the high-priority accounts of a model synced to the CRM (HubSpot), support
(Zendesk) and sales (Salesforce).

* **dbt_build**: builds ``dags_examples/dbt/opsflow_shop`` (staging views and the ``customer_spend`` mart
  over the operational data) and runs its tests. Failing tests make dbt exit non-zero; the next task runs
  anyway (``trigger_rule="all_done"``).
* **dbt_tests**: every dbt test of that command becomes an opsflow check result: a failing or warning
  test opens one incident (a Slack alert in ``#data-quality`` and one Jira ticket in OPS, with the failing
  rows sampled from its compiled SQL), later runs update it, and it resolves (ticket closed) when the test
  passes again.
* **check_customer_spend**: opsflow checks on the mart that dbt tests do not express well: rows exist,
  spend is never negative, and the high-priority share is plausible.
* **sync_high_priority_accounts**: the mart's high-priority accounts mirrored into HubSpot companies, only
  what changed.
* **mart_to_zendesk**: the same accounts become Zendesk organizations (found again by their ``external_id``,
  the account id) with their ``tier`` and ``total_spend`` as organization fields, so support sees who is
  calling. Only organizations whose values changed are sent.
* **mart_to_salesforce**: the same tier and spend written to the sales team's Accounts, upserted by the
  external id ``Warehouse_Id__c``.

The dbt connection comes from the Airflow connection ``params.warehouse_conn_id`` (host, port, login,
password, schema = database); ``OPSFLOW_DBT_BIN`` names the dbt executable (default ``dbt``) and
``OPSFLOW_DBT_TARGET`` its target directory (default the project's ``target``).

Connections besides the warehouse: ``slack_api_default``, ``opsflow_jira_default``, ``hubspot_default``
(company properties ``opsflow_account_id`` (unique), ``plan`` and ``total_spend``), ``zendesk_default`` (type
``zendesk``: ``<subdomain>.zendesk.com``, an agent's email and API token; organization fields ``tier``
(dropdown with ``high``) and ``total_spend`` (decimal) created once), ``salesforce_default`` (type
``salesforce``; on Account the unique External ID text field ``Warehouse_Id__c``, the picklist ``Tier__c``
(with ``high``) and the currency ``Total_Spend__c``), and a state database (``[opsflow] state_conn_id``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.jira import JiraTicket
from airflow_opsflow.alerts.slack import SlackAlert
from airflow_opsflow.destinations import HubSpotObjects, SalesforceObjects, ZendeskObjects
from airflow_opsflow.operators.data_check import DataCheckOperator
from airflow_opsflow.operators.dbt_results import DbtResultsOperator
from airflow_opsflow.operators.reverse_sync import ReverseSyncOperator
from airflow_opsflow.sync.mapping import Field

PROJECT = Path(__file__).resolve().parent / "dbt" / "opsflow_shop"
DBT = os.environ.get("OPSFLOW_DBT_BIN", "dbt")
TARGET = os.environ.get("OPSFLOW_DBT_TARGET", str(PROJECT / "target"))
WAREHOUSE = "{{ params.warehouse_conn_id }}"
_CONN = "conn.get(params.warehouse_conn_id)"
HIGH_PRIORITY = "SELECT account_id, name, total_spend, priority FROM analytics.customer_spend WHERE priority = 'high'"

with DAG(
    dag_id="ops_dbt_pipeline",
    schedule="0 6 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={"warehouse_conn_id": Param("warehouse", type="string", description="PostgreSQL dbt builds in")},
    tags=["opsflow", "example", "dbt"],
    doc_md=__doc__,
) as dag:
    dbt_build = BashOperator(
        task_id="dbt_build",
        bash_command=f"{DBT} build --project-dir {PROJECT} --profiles-dir {PROJECT} --target-path {TARGET} "
                     f"--log-path {TARGET}/logs",
        env={
            "OPSFLOW_DBT_HOST": f"{{{{ {_CONN}.host }}}}",
            "OPSFLOW_DBT_PORT": f"{{{{ {_CONN}.port or 5432 }}}}",
            "OPSFLOW_DBT_USER": f"{{{{ {_CONN}.login or '' }}}}",
            "OPSFLOW_DBT_PASSWORD": f"{{{{ {_CONN}.password or '' }}}}",
            "OPSFLOW_DBT_DBNAME": f"{{{{ {_CONN}.schema }}}}",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        },
        append_env=True,
    )

    dbt_tests = DbtResultsOperator(
        task_id="dbt_tests",
        target_path=TARGET,
        conn_id=WAREHOUSE,
        sample_limit=5,
        alerts=[SlackAlert(conn_id="slack_api_default", channel="#data-quality"),
                JiraTicket(project="OPS", conn_id="opsflow_jira_default", labels=("dbt",))],
        trigger_rule="all_done",  # report what dbt found even when dbt failed
    )

    check_customer_spend = DataCheckOperator(
        task_id="check_customer_spend",
        conn_id=WAREHOUSE,
        table="analytics.customer_spend",
        checks=[
            {"kind": "row_count", "min": 1},
            {"kind": "between", "column": "total_spend", "min": 0, "sample_columns": ["account_id", "total_spend"]},
            {"kind": "expression", "name": "high_priority_share", "expression": "priority = 'normal'",
             "fail_above": "50%", "description": "most accounts are not high priority: the bar is misset"},
        ],
    )

    sync_high_priority_accounts = ReverseSyncOperator(
        task_id="sync_high_priority_accounts",
        conn_id=WAREHOUSE,
        sql="SELECT account_id, name, plan, total_spend FROM analytics.customer_spend WHERE priority = 'high'",
        primary_key="account_id",
        mode="mirror",
        mapping={"opsflow_account_id": "account_id", "name": "name", "plan": "plan",
                 "total_spend": Field("total_spend", "number")},
        destination=HubSpotObjects("companies", id_property="opsflow_account_id"),
    )

    mart_to_zendesk = ReverseSyncOperator(
        task_id="mart_to_zendesk",
        conn_id=WAREHOUSE,
        sql=HIGH_PRIORITY,
        primary_key="account_id",
        # upsert: an account that falls below the bar keeps its organization (mode="mirror" would delete it,
        # and with it the organization's memberships in Zendesk)
        mode="upsert",
        mapping={
            "external_id": Field("account_id", "string"),  # how the organization is found again
            "name": "name",
            "tier": "priority",  # the organization fields
            "total_spend": Field("total_spend", "decimal"),
        },
        destination=ZendeskObjects("organizations", conn_id="zendesk_default"),
    )

    mart_to_salesforce = ReverseSyncOperator(
        task_id="mart_to_salesforce",
        conn_id=WAREHOUSE,
        sql=HIGH_PRIORITY,
        primary_key="account_id",
        mode="upsert",  # the Accounts belong to sales: never deleted from here
        mapping={
            "Warehouse_Id__c": Field("account_id", "string"),
            "Name": "name",  # required when the upsert creates an Account sales does not have yet
            "Tier__c": "priority",
            "Total_Spend__c": Field("total_spend", "decimal"),
        },
        destination=SalesforceObjects("Account", external_id_field="Warehouse_Id__c", conn_id="salesforce_default"),
    )

    dbt_build >> [dbt_tests, check_customer_spend]
    # only a mart that passed its checks reaches the CRM, support and sales; each system on its own task, so
    # one that is down holds up only its own
    check_customer_spend >> [sync_high_priority_accounts, mart_to_zendesk, mart_to_salesforce]
