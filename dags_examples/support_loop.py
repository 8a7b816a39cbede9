"""The operational-analytics loop: warehouse data sent where support and sales work, and problems turned into
Cases they follow.

Every hour:

* **accounts_to_zendesk**: the high-priority accounts, ranked by what they paid us
  (``sql/high_priority_accounts.sql``, the same model as ``crm_high_priority_accounts``), become Zendesk
  organizations with their ``tier``, ``total_spend`` and ``spend_rank`` as organization fields, so support sees
  (and its views and triggers sort by) who is calling. Only organizations whose values changed are sent.
* **rank_open_tickets**: once the organizations exist, the tickets they already have open are ranked
  (``sql/open_ticket_ranking.sql``, the same model): a critical account's get priority urgent and the tag
  ``vip``, a high account's priority high. Zendesk triggers rank a new ticket by its organization's tier, but
  never re-run when the tier changes; only accounts whose rank changed are sent, solved tickets are left alone.
* **accounts_to_salesforce**: the same tier and spend written to the sales team's Accounts, upserted by the
  external id ``Warehouse_Id__c``.
* **failed_payments**: each payment that failed in the last hour is followed on its own (an entity); the
  incident opens one Salesforce Case for payments ops, new failed payments are added to it as a comment, and it
  is closed when they all went through.
* **customers_in_salesforce**: the warehouse reconciled against the CRM: every customer who paid us is an
  Account in Salesforce (a payment from a customer sales has never heard of opens a Case too).

Connections: ``ops_db`` (any SQL connection; trigger with ``{"conn_id": ...}`` for another), ``zendesk_default``
(type ``zendesk``: ``<subdomain>.zendesk.com``, an agent's email and API token; organization fields ``tier``
(dropdown: critical, high), ``total_spend`` (decimal) and ``spend_rank`` (integer) created once; the agent
can edit tickets),
``salesforce_default`` (type ``salesforce``; on Account the unique External ID text field ``Warehouse_Id__c``,
the picklist ``Tier__c`` and the currency ``Total_Spend__c``; on Case the External ID ``Opsflow_Fingerprint__c``),
and a state database (``[opsflow] state_conn_id``). ``make demo`` runs it against local stand-ins.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.salesforce import SalesforceCase
from airflow_opsflow.destinations.salesforce import SalesforceObjects
from airflow_opsflow.destinations.zendesk import ZendeskObjects
from airflow_opsflow.operators.data_check import DataCheckOperator
from airflow_opsflow.operators.reverse_sync import ReverseSyncOperator
from airflow_opsflow.sync.mapping import Field

CONN = "{{ params.conn_id }}"
HIGH_PRIORITY_ACCOUNTS = "sql/high_priority_accounts.sql"  # account_id, name, total_spend, spend_rank, priority
OPEN_TICKET_RANKING = "sql/open_ticket_ranking.sql"  # account_id, ticket_priority, ticket_tags (includes the above)
# one Case per incident, found again by its fingerprint (never two), closed when the incident resolves
PAYMENTS_CASES = SalesforceCase(conn_id="salesforce_default")

with DAG(
    dag_id="support_loop",
    schedule="@hourly",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={"conn_id": Param("ops_db", type="string", description="SQL connection of the ops database")},
    tags=["opsflow", "example", "reverse-etl", "support", "salesforce", "zendesk"],
    doc_md=__doc__,
) as dag:
    # The tasks are independent (a system that is down holds up only its own task), except the ticket ranking:
    # it needs the organizations.
    to_zendesk = ReverseSyncOperator(
        task_id="accounts_to_zendesk",
        conn_id=CONN,
        sql=HIGH_PRIORITY_ACCOUNTS,
        primary_key="account_id",
        # upsert: an account that falls below the bar keeps its organization (mode="mirror" would delete it,
        # and with it the organization's memberships in Zendesk)
        mode="upsert",
        mapping={
            "external_id": Field("account_id", "string"),  # how the organization is found again
            "name": "name",
            "tier": "priority",  # the organization fields
            "total_spend": Field("total_spend", "decimal"),
            "spend_rank": Field("spend_rank", "integer"),
        },
        destination=ZendeskObjects(object_type="organizations", conn_id="zendesk_default"),
    )

    rank_tickets = ReverseSyncOperator(
        task_id="rank_open_tickets",
        conn_id=CONN,
        sql=OPEN_TICKET_RANKING,
        primary_key="account_id",
        # upsert: an account that falls below the bar keeps the priority its tickets were given (agents may
        # have changed it since); mirror is refused here, there is nothing to undo
        mode="upsert",
        mapping={
            "external_id": Field("account_id", "string"),  # the organization whose open tickets are ranked
            "priority": "ticket_priority",
            "tags": "ticket_tags",  # added; a ticket's other tags stay
        },
        destination=ZendeskObjects("organization_tickets", conn_id="zendesk_default"),
    )
    to_zendesk >> rank_tickets  # an organization created in this run is found by its external id

    to_salesforce = ReverseSyncOperator(
        task_id="accounts_to_salesforce",
        conn_id=CONN,
        sql=HIGH_PRIORITY_ACCOUNTS,
        primary_key="account_id",
        mode="upsert",
        mapping={
            "Warehouse_Id__c": Field("account_id", "string"),
            "Name": "name",  # required when the upsert creates an Account sales does not have yet
            "Tier__c": "priority",
            "Total_Spend__c": Field("total_spend", "decimal"),
        },
        destination=SalesforceObjects("Account", external_id_field="Warehouse_Id__c", conn_id="salesforce_default"),
    )

    failed_payments = DataCheckOperator(
        task_id="failed_payments",
        conn_id=CONN,
        checks=[{
            "kind": "sql",
            "name": "failed_payments_last_hour",
            "description": "Payments that failed in the last hour: payments ops retries them or calls the customer",
            "sql": """
                SELECT id, customer_id, amount, provider, created_at FROM payments
                WHERE status = 'failed' AND created_at >=
                    '{{ (dag_run.run_after - macros.timedelta(hours=1)).strftime('%Y-%m-%d %H:%M:%S') }}'
            """,
            # one incident (one Case) for the check; each failed payment is tracked in it until it succeeds
            "entity": {"key": "id", "amount": "amount", "since": "created_at", "noun": "failed payment"},
            "owner": "payments-ops",
        }],
        alerts=[PAYMENTS_CASES],
    )

    customers_in_crm = DataCheckOperator(
        task_id="customers_in_salesforce",
        conn_id=CONN,
        checks=[{
            "kind": "reconcile",
            "name": "paying_customers_in_salesforce",
            "description": "Every customer who paid us is an Account in Salesforce",
            # keys are named alike on both sides: alias the warehouse's (SOQL has no column aliases), and
            # as text, as Salesforce keeps the External ID field
            "left": {"sql": "SELECT DISTINCT CAST(customer_id AS VARCHAR(20)) AS Warehouse_Id__c FROM payments "
                            "WHERE status = 'succeeded'",
                     "label": "payments"},
            "right": {"salesforce": {"soql": "SELECT Warehouse_Id__c FROM Account WHERE Warehouse_Id__c != null"}},
            "key": "Warehouse_Id__c",
            "expect": "left_in_right",  # Accounts without payments (prospects) are fine
            "owner": "sales-ops",
        }],
        alerts=[PAYMENTS_CASES],
    )
