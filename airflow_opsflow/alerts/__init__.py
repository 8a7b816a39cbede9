"""Alert routes a DAG author lists in ``alerts=[...]``: Slack, email, Jira tickets. Each implements
:class:`~airflow_opsflow.incidents.route.AlertRoute` (the contract, owned by the incidents engine)."""

from airflow_opsflow.incidents.route import AlertRoute

__all__ = ["AlertRoute"]
