"""Which DAGs the caller may read: the Ops view shows nothing of a DAG its user cannot read in Airflow.

The state database holds DAG ids only; the configured auth manager decides, DAG by DAG (Airflow's own
``filter_authorized_dag_ids``, which an auth manager may answer in one query), so a DAG that no longer
exists in Airflow is shown only to those the auth manager still lets read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def readable_dags(user: Any, dag_ids: Iterable[str]) -> set[str]:
    """The ``dag_ids`` whose DAG ``user`` may read (GET on the DAG)."""
    from airflow.api_fastapi.app import get_auth_manager

    wanted = {d for d in dag_ids if d}
    if not wanted:
        return set()
    return set(get_auth_manager().filter_authorized_dag_ids(dag_ids=wanted, user=user, method="GET"))
