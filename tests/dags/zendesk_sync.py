"""Test DAGs: ReverseSyncOperator into the fake Zendesk's organizations (mirror) and users (upsert), and the
ranking of the organizations' open tickets by the accounts' total spend (organization_tickets)."""

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

# The warehouse's ranking: total spend -> the priority (and the vip tag) of the account's open tickets.
RANKING = ("SELECT account_id, CASE WHEN total_spend >= 2000 THEN 'urgent' WHEN total_spend >= 1000 THEN 'high' "
           "ELSE 'normal' END AS priority, CASE WHEN total_spend >= 1000 THEN 'vip' END AS tags FROM accounts")

with DAG("test_zendesk_ticket_ranking", schedule=None, start_date=START, catchup=False,
         params=PARAMS) as ranking_dag:
    ReverseSyncOperator(
        task_id="ranking", conn_id="{{ params.conn_id }}", sql=RANKING, primary_key="account_id",
        dry_run="{{ params.dry_run }}", full_resync="{{ params.full_resync }}",
        mapping={"external_id": "account_id", "priority": "priority", "tags": "tags"},
        destination=ZendeskObjects("organization_tickets"), max_failed=None, max_failed_share=0.5,
    )

# The same organizations sync fanned out over three mapped tasks, each its own shard of the keys (and state).
with DAG("test_zendesk_organizations_sharded", schedule=None, start_date=START, catchup=False,
         params=PARAMS) as sharded_dag:
    ReverseSyncOperator.partial(
        task_id="organizations_shard", conn_id="{{ params.conn_id }}", table="accounts", primary_key="account_id",
        mode="mirror", mapping={"external_id": "account_id", "name": "name", "tier": "tier"},
        destination=ZendeskObjects("organizations"), retries=0,
    ).expand(shard=[(0, 3), (1, 3), (2, 3)])
