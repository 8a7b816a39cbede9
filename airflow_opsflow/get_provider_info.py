"""Provider metadata read by Airflow's ProvidersManager. Pure data: no imports, no I/O."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-opsflow",
        "name": "opsflow",
        "description": "Operational data checks, alerts, tickets and reverse ETL for Apache Airflow.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "opsflow data checks",
                "external-doc-url": "https://pypi.org/project/airflow-opsflow/",
                "tags": ["software"],
            },
            {
                "integration-name": "opsflow Jira tickets",
                "external-doc-url": "https://pypi.org/project/airflow-opsflow/",
                "tags": ["software"],
            },
            {
                "integration-name": "opsflow reverse sync",
                "external-doc-url": "https://pypi.org/project/airflow-opsflow/",
                "tags": ["software"],
            },
        ],
        "hooks": [
            {"integration-name": "opsflow Jira tickets", "python-modules": ["airflow_opsflow.hooks.jira"]},
            {"integration-name": "opsflow reverse sync", "python-modules": ["airflow_opsflow.hooks.hubspot"]},
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_opsflow.hooks.jira.JiraTicketHook",
                "hook-name": "Jira (opsflow tickets)",
                "connection-type": "opsflow_jira",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {
                        "host": "Jira URL",
                        "login": "Email (Jira Cloud; empty for Server/Data Center)",
                        "password": "API token (Cloud) or personal access token (Server/Data Center)",
                    },
                    "placeholders": {
                        "host": "https://your-domain.atlassian.net",
                        "login": "ops-bot@example.com",
                    },
                },
                "conn-fields": {
                    "deployment": {
                        "label": "Deployment",
                        "description": "auto: ask serverInfo; or force cloud / server.",
                        "schema": {"type": ["string", "null"], "enum": ["auto", "cloud", "server"], "default": "auto"},
                    },
                    "verify": {
                        "label": "Verify TLS",
                        "description": "Verify the server's certificate.",
                        "schema": {"type": ["boolean", "null"], "default": True},
                    },
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "schema": {"type": ["integer", "null"], "default": 30},
                    },
                },
            },
            {
                "hook-class-name": "airflow_opsflow.hooks.hubspot.HubSpotHook",
                "hook-name": "HubSpot (opsflow sync)",
                "connection-type": "opsflow_hubspot",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {
                        "host": "API base URL (empty: https://api.hubapi.com)",
                        "password": "Private app access token",
                    },
                    "placeholders": {"host": "https://api.hubapi.com"},
                },
                "conn-fields": {
                    "requests_per_10s": {
                        "label": "Requests per 10 s",
                        "description": "The account's burst limit: 100 (Free/Starter) or 190 (Pro/Enterprise).",
                        "schema": {"type": ["integer", "null"], "default": 100},
                    },
                },
            },
        ],
        "operators": [
            {
                "integration-name": "opsflow data checks",
                "python-modules": ["airflow_opsflow.operators.data_check", "airflow_opsflow.operators.check_results",
                                   "airflow_opsflow.operators.dbt_results", "airflow_opsflow.operators.report",
                                   "airflow_opsflow.operators.quality_gate"],
            },
            {
                "integration-name": "opsflow Jira tickets",
                "python-modules": ["airflow_opsflow.operators.ticket"],
            },
            {
                "integration-name": "opsflow reverse sync",
                "python-modules": ["airflow_opsflow.operators.reverse_sync"],
            },
        ],
        "sensors": [
            {
                "integration-name": "opsflow data checks",
                "python-modules": ["airflow_opsflow.sensors.data_condition"],
            },
            {
                "integration-name": "opsflow Jira tickets",
                "python-modules": ["airflow_opsflow.sensors.ticket"],
            },
        ],
        "config": {
            "opsflow": {
                "description": "Where opsflow keeps its state (incidents, alert deliveries, later syncs and "
                "metric history): a SQL database of yours, never a worker's disk or Airflow's metadata DB.",
                "options": {
                    "state_conn_id": {
                        "description": "Airflow connection of the state database (PostgreSQL, MySQL/MariaDB or "
                        "SQLite). Operators take state_conn_id= to override it.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "opsflow_state",
                        "default": "",
                    },
                    "state_table_prefix": {
                        "description": "Prefix of opsflow's table names in the state database.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "opsflow_",
                        "default": "opsflow_",
                    },
                    "state_schema": {
                        "description": "Schema holding opsflow's tables (default: the connection's own).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "ops",
                        "default": "",
                    },
                    "result_history": {
                        "description": "Record every check result and sync run in the state database "
                        "(tables check_results and sync_runs, docs/history.md) when one is configured. "
                        "Operators take record_history= to override it.",
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": "False",
                        "default": "True",
                    },
                    "history_retention_days": {
                        "description": "Days the result history keeps its rows (0: kept for ever); older rows "
                        "of a task are deleted when the task next writes its own.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "90",
                        "default": "400",
                    },
                },
            }
        },
        # Assets of the CRM objects a sync writes: <scheme>://<account>/<object> (docs/lineage.md).
        "asset-uris": [
            {
                "schemes": ["hubspot", "salesforce", "zendesk"],
                "handler": "airflow_opsflow.lineage.sanitize_uri",
                "factory": "airflow_opsflow.lineage.create_asset",
                "to_openlineage_converter": "airflow_opsflow.lineage.convert_asset_to_openlineage",
            }
        ],
        "extra-links": ["airflow_opsflow.links.TicketLink", "airflow_opsflow.links.OpsViewLink",
                        "airflow_opsflow.links.OpsSyncsLink"],
        "notifications": ["airflow_opsflow.notifiers.incident.IncidentNotifier"],
        "triggers": [
            {
                "integration-name": "opsflow data checks",
                "python-modules": ["airflow_opsflow.triggers.data_condition"],
            },
            {
                "integration-name": "opsflow Jira tickets",
                "python-modules": ["airflow_opsflow.triggers.ticket"],
            },
        ],
    }
