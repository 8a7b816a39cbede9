"""Test DAGs: routes and sync destinations whose settings come from params and Variables (Jinja)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.email import EmailAlert
from airflow_opsflow.alerts.slack import SlackAlert
from airflow_opsflow.destinations import DatabaseTable, HttpEndpoint
from airflow_opsflow.operators.data_check import DataCheckOperator
from airflow_opsflow.operators.reverse_sync import ReverseSyncOperator

START = pendulum.datetime(2024, 1, 1, tz="UTC")

with DAG("test_templated_alerts", schedule=None, start_date=START, catchup=False,
         params={"conn_id": Param("opsflow_sqlite", type="string"), "channel": Param("#alerts", type="string")}
         ) as alerts_dag:
    DataCheckOperator(
        task_id="check_payments",
        conn_id="{{ params.conn_id }}",
        table="payments",
        checks=[{"name": "amount_positive", "kind": "between", "column": "amount", "min": 0,
                 "min_exclusive": True, "sample_columns": ["id", "amount"]}],
        alerts=[SlackAlert(conn_id="slack_api_default", channel="{{ params.channel }}", name="slack:oncall"),
                EmailAlert(to="{{ var.value.oncall_emails }}", name="email:oncall")],
        retries=0,
    )

SYNC_PARAMS = {"conn_id": Param("opsflow_sqlite", type="string"), "api_conn": Param("crm_api", type="string"),
               "name_column": Param("name", type="string"), "max_delete_share": Param("0.2", type="string")}

with DAG("test_templated_sync", schedule=None, start_date=START, catchup=False, params=SYNC_PARAMS) as sync_dag:
    ReverseSyncOperator(
        task_id="push_accounts", conn_id="{{ params.conn_id }}", table="accounts", primary_key="account_id",
        mode="mirror", mapping={"id": "account_id", "name": "{{ params.name_column }}", "tier": "tier"},
        max_delete_share="{{ params.max_delete_share }}", max_delete_rows=0,
        state_conn_id="{{ var.value.sync_state_conn }}", retries=0,
        # delete_endpoint stays a per-record template: not rendered by Airflow (no `key` in its context)
        destination=HttpEndpoint("{{ params.api_conn }}", endpoint="/v1/accounts", batch_size=50,
                                 delete_endpoint="/v1/accounts/{{ key }}", headers={"X-Api-Key": "s3cr3t-key"}),
    )

with DAG("test_templated_table", schedule=None, start_date=START, catchup=False,
         params={"conn_id": Param("opsflow_sqlite", type="string"), "key": Param("account_id", type="string")}
         ) as table_dag:
    ReverseSyncOperator(
        task_id="to_table", conn_id="{{ params.conn_id }}", table="accounts", primary_key="account_id",
        state_conn_id="{{ var.value.sync_state_conn }}", retries=0,
        destination=DatabaseTable("{{ var.value.sync_state_conn }}", "crm_accounts", key="{{ params.key }}"),
    )

# Two map indexes in one process (dag.test): each renders its own copy of the shared route.
with DAG("test_templated_mapped_alerts", schedule=None, start_date=START, catchup=False,
         params={"conn_id": Param("opsflow_sqlite", type="string")}) as mapped_alerts_dag:
    DataCheckOperator.partial(
        task_id="check_payments",
        conn_id="{{ params.conn_id }}",
        checks=[{"name": "amount_positive", "kind": "between", "column": "amount", "min": 0,
                 "min_exclusive": True}],
        alerts=[SlackAlert(conn_id="slack_api_default", channel="{{ ['#alerts', '#ops'][ti.map_index] }}",
                           name="slack:by-index")],
        retries=0,
    ).expand(table=["payments", "payments"])
