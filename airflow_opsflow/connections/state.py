"""The state store of an Airflow deployment: ``[opsflow] state_conn_id``, or a per-operator override."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import conf
from airflow.sdk.exceptions import AirflowException

from airflow_opsflow.connections.sql import dialect_of, get_db_hook
from airflow_opsflow.state.store import StateStore

if TYPE_CHECKING:
    from airflow_opsflow.history.repo import ResultHistory


def state_store(conn_id: str | None = None, owner: str = "") -> StateStore:
    """The StateStore on ``conn_id``, else on ``[opsflow] state_conn_id``.

    :param conn_id: an explicit state connection (an operator's ``state_conn_id``).
    :param owner: who asks (``"dag 'd', task 't'"``), named in errors.
    """
    who = f"{owner}: " if owner else ""
    conn_id = conn_id or conf.get("opsflow", "state_conn_id", fallback="") or None
    if not conn_id:
        raise AirflowException(
            f"{who}opsflow needs a state database for incidents and alerts, and none is configured: set "
            "[opsflow] state_conn_id (env AIRFLOW__OPSFLOW__STATE_CONN_ID) to a SQL connection, or pass "
            "state_conn_id= to the operator")
    hook = get_db_hook(conn_id, owner)
    return StateStore(
        hook.get_conn,
        dialect_of(hook),
        paramstyle="qmark" if getattr(hook, "placeholder", "%s") == "?" else "format",
        label=f"connection {conn_id!r}",
        prefix=conf.get("opsflow", "state_table_prefix", fallback="opsflow_") or "opsflow_",
        schema=conf.get("opsflow", "state_schema", fallback="") or None,
    )


def result_history(conn_id: str | None = None, owner: str = "", enabled: bool | None = None) -> ResultHistory | None:
    """Where a task records its results (:mod:`airflow_opsflow.history.repo`), or None: no state database is
    configured (history is then simply not kept), or ``enabled``/``[opsflow] result_history`` is off.

    :param enabled: the operator's ``record_history`` (None: ``[opsflow] result_history``, default on).
    """
    from datetime import timedelta

    from airflow_opsflow.history.repo import ResultHistory

    if enabled is None:
        enabled = conf.getboolean("opsflow", "result_history", fallback=True)
    if not enabled or not (conn_id or conf.get("opsflow", "state_conn_id", fallback="")):
        return None
    days = conf.getint("opsflow", "history_retention_days", fallback=400)
    if days < 0:
        raise AirflowException(f"[opsflow] history_retention_days must be 0 (keep for ever) or more, got {days}")
    return ResultHistory(state_store(conn_id, owner), timedelta(days=days) if days else None)
