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


@cache
def _apps() -> list[dict[str, Any]]:
    from airflow_opsflow.plugins.api import create_app

    return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "opsflow REST API"}]


class OpsflowPlugin(AirflowPlugin):
    """opsflow in Airflow's API server: the REST API under ``/opsflow/api/v1`` (its OpenAPI document at
    ``/opsflow/openapi.json``, interactive at ``/opsflow/docs``)."""

    name = "opsflow"

    @property  # read-only on purpose: built when the API server first reads it
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return _apps()
