"""Alert routes shared by the example DAGs, importable by every Airflow process (the DAGs folder is on
``sys.path``): a deadline alert's callback runs in the triggerer and names its routes by dotted path
(``"alert_routes.FINANCE_ONCALL"``), since Airflow stores the callback's arguments with the serialized DAG."""

from __future__ import annotations

from airflow_opsflow.alerts.email import EmailAlert
from airflow_opsflow.alerts.slack import SlackAlert

FINANCE_ONCALL = [SlackAlert(conn_id="slack_api_default", channel="#finance-ops"),
                  EmailAlert(to=["finance-ops@example.com"])]
