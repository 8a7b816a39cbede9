"""Resolve an Airflow connection to its provider's ``DbApiHook`` and the SQL dialect it speaks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException, AirflowFailException

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook


def get_db_hook(conn_id: str, owner: str = "") -> DbApiHook:
    """The ``DbApiHook`` of ``conn_id`` (any common-sql connection: postgres, mysql, sqlite, ...).

    Its ``get_conn`` raises an ``AirflowException`` that names ``owner`` and the connection (never its
    password) and says what to check, instead of the driver's bare error: every opsflow engine opens its
    connections through ``hook.get_conn``, so this one place covers checks, syncs, reports and the state
    store. It stays retryable: a database that is down may be up at the next try.

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
    hook.get_conn = _named(hook.get_conn, conn_id, conn.conn_type, conn.password, who)  # type: ignore[method-assign]
    return hook


def _named(get_conn: Callable[[], Any], conn_id: str, conn_type: str | None, password: str | None,
           who: str) -> Callable[[], Any]:
    @functools.wraps(get_conn)
    def opened() -> Any:
        try:
            return get_conn()
        except Exception as e:
            reason = " ".join(str(e).split()).rstrip(".") or type(e).__name__
            if password:
                reason = reason.replace(password, "***")
            # A URI SQLite cannot read is a configuration error: no retry will fix it.
            error = AirflowFailException if conn_type == "sqlite" and "invalid uri" in reason else AirflowException
            raise error(
                f"{who}cannot open connection {conn_id!r} (type {conn_type!r}): {type(e).__name__}: "
                f"{reason[:500]}. {_hint(conn_id, conn_type)}") from None
    return opened


def _hint(conn_id: str, conn_type: str | None) -> str:
    if conn_type == "sqlite":
        var = f"AIRFLOW_CONN_{conn_id.upper()}"
        return ("For SQLite, give the file's absolute path as the connection's host, e.g. "
                f"{var}='{{\"conn_type\": \"sqlite\", \"host\": \"/data/ops.db\"}}', or as a URI with three "
                f"slashes, {var}='sqlite:///data/ops.db' (Airflow's sqlite provider adds the fourth).")
    return ("Check that the database is up and reachable from the worker, and the connection's host, port, "
            "database and credentials; the task is retried as its retries allow.")


def dialect_of(hook: DbApiHook, override: str | None = None) -> str:
    """The sqlglot dialect for ``hook``: ``override`` when given, else from the connection type."""
    from airflow_opsflow.core.dialects import to_sqlglot_dialect

    if override:
        return to_sqlglot_dialect(override)
    return to_sqlglot_dialect(getattr(hook, "conn_type", None) or hook.dialect_name)
