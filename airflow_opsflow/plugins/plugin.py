"""The Airflow plugin opsflow registers (entry point group ``airflow.plugins``): no install step beyond the
provider's.

Every Airflow process loads plugins (the scheduler, DAG processor, each task's runner), while only the API
server mounts FastAPI apps; so the app is built when the API server first asks for it, not at import.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/opsflow"
UI_PATH = f"{URL_PREFIX}/ui/"

# Plain data (read by the API server for the UI's navigation): the Ops view in the navigation bar and as a tab
# of every task instance, opened on that task's incidents. The hrefs are the API server's own paths.
EXTERNAL_VIEWS: list[dict[str, Any]] = [
    {"name": "Ops", "href": UI_PATH, "destination": "nav", "url_route": "opsflow", "icon": f"{UI_PATH}static/ops.svg"},
    {"name": "Ops", "href": UI_PATH + "?page=incidents&status=all&dag_id={DAG_ID}&task_id={TASK_ID}",
     "destination": "task_instance", "url_route": "opsflow-task", "icon": f"{UI_PATH}static/ops.svg"},
]


@cache
def _apps() -> list[dict[str, Any]]:
    from airflow_opsflow.plugins.api import create_app
    from airflow_opsflow.plugins.ui_routes import mount_ui

    app = create_app()
    mount_ui(app)
    return [{"app": app, "url_prefix": URL_PREFIX, "name": "opsflow REST API and Ops view"}]


class OpsflowPlugin(AirflowPlugin):
    """opsflow in Airflow's API server: the REST API under ``/opsflow/api/v1`` (its OpenAPI document at
    ``/opsflow/openapi.json``, interactive at ``/opsflow/docs``) and the Ops view at ``/opsflow/ui/``, linked
    from Airflow's navigation and from each task instance."""

    name = "opsflow"
    external_views = EXTERNAL_VIEWS

    @property  # read-only on purpose: built when the API server first reads it
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return _apps()
