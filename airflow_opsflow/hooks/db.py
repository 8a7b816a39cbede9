"""Resolve an Airflow connection to its provider's ``DbApiHook`` and the SQL dialect it speaks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook


def get_db_hook(conn_id: str, owner: str = "") -> DbApiHook:
    """The ``DbApiHook`` of ``conn_id`` (any common-sql connection: postgres, mysql, sqlite, ...).

    :param conn_id: the Airflow connection id.
    :param owner: who asks (``"dag 'd', task 't'"``), named in errors.
    """
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    who = f"{owner}: " if owner else ""
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as e:
        raise AirflowException(f"{who}connection {conn_id!r} is not defined ({e})") from None
    hook = conn.get_hook()
    if not isinstance(hook, DbApiHook):
        raise AirflowException(
            f"{who}connection {conn_id!r} (type {conn.conn_type!r}) is not a SQL connection: "
            f"its hook {type(hook).__name__} is not a common-sql DbApiHook"
        )
    return hook


def dialect_of(hook: DbApiHook, override: str | None = None) -> str:
    """The sqlglot dialect for ``hook``: ``override`` when given, else from the connection type."""
    from airflow_opsflow.checks.dialects import to_sqlglot_dialect

    if override:
        return to_sqlglot_dialect(override)
    return to_sqlglot_dialect(getattr(hook, "conn_type", None) or hook.dialect_name)
