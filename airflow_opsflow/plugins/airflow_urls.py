"""Paths of Airflow's own UI that the Ops view links to (relative: the view is served by the same host)."""

from __future__ import annotations

import re
from urllib.parse import quote

_MAPPED = re.compile(r"(.+)\[(\d+)\]")  # opsflow keys a mapped task instance's rows task[index]


def split_task(task_key: str) -> tuple[str, int | None]:
    """``task[3]`` -> (``task``, 3); a plain task id -> (it, None)."""
    m = _MAPPED.fullmatch(task_key)
    return (m[1], int(m[2])) if m else (task_key, None)


def task_instance_url(dag_id: str, task_key: str, run_id: str) -> str:
    """A task instance's page in Airflow 3's UI (its router: ``dags/:dagId/runs/:runId/tasks/:taskId`` and
    ``.../mapped/:mapIndex``), whose first tab is the log; the parts URL-quoted."""
    task_id, index = split_task(task_key)
    path = f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
    return path if index is None else f"{path}/mapped/{index}"
