"""How opsflow operators name themselves in errors: the DAG and task, so a message points at the code."""

from __future__ import annotations

from typing import Any


def where_am_i(operator: Any) -> str:
    """``dag 'd', task 't'`` (or ``task 't'`` before the task is in a DAG)."""
    dag_id = operator.dag_id if operator.has_dag() else None
    return f"dag {dag_id!r}, task {operator.task_id!r}" if dag_id else f"task {operator.task_id!r}"
