"""Where ReverseSyncOperator writes: declarations resolved to engine destinations at run time.

``HttpEndpoint`` (any REST/webhook API through an ``http`` connection), ``HubSpotObjects`` (HubSpot CRM
objects), ``SalesforceObjects`` (sObjects upserted by external id), ``ZendeskObjects`` (Zendesk
organizations and users) and ``DatabaseTable`` (a table on any
common-sql connection). They hold settings only: no
connection is looked up and nothing heavy is imported until the task runs.
"""

from airflow_opsflow.destinations.base import SyncDestination
from airflow_opsflow.destinations.http import HttpEndpoint
from airflow_opsflow.destinations.hubspot import HubSpotAssociation, HubSpotObjects
from airflow_opsflow.destinations.salesforce import SalesforceObjects
from airflow_opsflow.destinations.table import DatabaseTable
from airflow_opsflow.destinations.zendesk import ZendeskObjects

__all__ = ["DatabaseTable", "HttpEndpoint", "HubSpotAssociation", "HubSpotObjects", "SalesforceObjects",
           "SyncDestination", "ZendeskObjects"]
