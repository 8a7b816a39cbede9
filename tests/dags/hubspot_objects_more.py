"""Test DAGs: ReverseSyncOperator into the fake HubSpot's companies, contacts and tickets (associated with their
company) and a custom object addressed by its type id."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.destinations.hubspot import HubSpotAssociation, HubSpotObjects
from airflow_opsflow.operators.reverse_sync import ReverseSyncOperator

START = pendulum.datetime(2024, 1, 1, tz="UTC")
PARAMS = {"conn_id": Param("hs_source", type="string"), "dry_run": Param(False, type="boolean"),
          "full_resync": Param(False, type="boolean")}
TOLERANT = {"max_failed": None, "max_failed_share": 0.5}  # records whose company is missing fail, the rest go
# Tickets go to the "Escalations" pipeline (id 9): open cases to its Triage stage (91), closed ones to Done (92).
CASES = """
SELECT case_id, account_id, subject, priority, '9' AS pipeline,
       CASE status WHEN 'closed' THEN '92' ELSE '91' END AS stage
FROM support_cases
"""

with DAG("test_hubspot_crm", schedule=None, start_date=START, catchup=False, params=PARAMS) as crm_dag:
    companies = ReverseSyncOperator(
        task_id="companies", conn_id="{{ params.conn_id }}", table="accounts", primary_key="account_id",
        dry_run="{{ params.dry_run }}", full_resync="{{ params.full_resync }}",
        mapping={"account_key": "account_id", "name": "name", "domain": "domain"},
        destination=HubSpotObjects("companies", id_property="account_key"),
    )
    contacts = ReverseSyncOperator(
        task_id="contacts", conn_id="{{ params.conn_id }}", table="people", primary_key="person_id",
        dry_run="{{ params.dry_run }}", full_resync="{{ params.full_resync }}",
        mapping={"email": "email", "firstname": "first_name", "company_key": "account_id"},
        destination=HubSpotObjects("contacts", id_property="email", associations=[
            {"to": "companies", "key": "company_key", "id_property": "account_key"}]),
        **TOLERANT,
    )
    tickets = ReverseSyncOperator(
        task_id="tickets", conn_id="{{ params.conn_id }}", sql=CASES, primary_key="case_id",
        dry_run="{{ params.dry_run }}", full_resync="{{ params.full_resync }}",
        mapping={"warehouse_case_id": "case_id", "subject": "subject", "hs_ticket_priority": "priority",
                 "hs_pipeline": "pipeline", "hs_pipeline_stage": "stage", "company_key": "account_id"},
        destination=HubSpotObjects("tickets", id_property="warehouse_case_id", associations=[
            HubSpotAssociation(to="companies", key="company_key", id_property="account_key")]),
        **TOLERANT,
    )
    companies >> [contacts, tickets]

with DAG("test_hubspot_custom_object", schedule=None, start_date=START, catchup=False,
         params=PARAMS) as custom_dag:
    ReverseSyncOperator(
        task_id="subscriptions", conn_id="{{ params.conn_id }}", table="subscriptions", primary_key="sub_id",
        mode="mirror", mapping={"subscription_key": "sub_id", "plan": "plan", "seats": "seats"},
        destination=HubSpotObjects("2-1234", id_property="subscription_key"),
    )

# The fake defines no association between a custom object and companies: the run stops, naming it.
with DAG("test_hubspot_custom_associated", schedule=None, start_date=START, catchup=False,
         params=PARAMS) as custom_associated_dag:
    ReverseSyncOperator(
        task_id="subscriptions", conn_id="{{ params.conn_id }}", table="subscriptions", primary_key="sub_id",
        mapping={"subscription_key": "sub_id", "plan": "plan", "company_key": "account_id"}, retries=0,
        destination=HubSpotObjects("2-1234", id_property="subscription_key", associations=[
            {"to": "companies", "key": "company_key", "id_property": "account_key"}]),
    )
