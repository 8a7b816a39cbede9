"""DataConditionTrigger: poll a SQL condition from the triggerer without blocking its event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class DataConditionTrigger(BaseTrigger):
    """Fire once the condition holds; fire an error event when it cannot be evaluated.

    DB-API drivers are blocking, so each poll runs in a worker thread (``asyncio.to_thread``): the
    triggerer's event loop, shared with every other deferred task, never waits on the database.

    :param conn_id: a SQL connection.
    :param dialect: the sqlglot dialect, when the connection type does not tell it.
    :param sql: a query whose first value must be truthy; or
    :param checks: a check spec (as JSON-able dicts) that must pass.
    :param poll_interval: seconds between polls.
    :param statement_timeout: seconds after which one poll's query is cancelled.
    :param deadline: a Unix time after which the trigger stops waiting and fires a ``timeout`` event
        (the sensor's own timeout, kept here so it holds wherever the trigger runs).
    :param run_time: the run's time (ISO 8601) at which freshness rules are judged (None: the current time).
    """

    def __init__(
        self,
        conn_id: str,
        dialect: str | None = None,
        sql: str | None = None,
        checks: dict[str, Any] | None = None,
        poll_interval: float = 60.0,
        statement_timeout: float | None = None,
        deadline: float | None = None,
        run_time: str | None = None,
    ) -> None:
        super().__init__()
        self.deadline = deadline
        self.run_time = run_time
        self.conn_id = conn_id
        self.dialect = dialect
        self.sql = sql
        self.checks = checks
        self.poll_interval = poll_interval
        self.statement_timeout = statement_timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "dialect": self.dialect,
                "sql": self.sql,
                "checks": self.checks,
                "poll_interval": self.poll_interval,
                "statement_timeout": self.statement_timeout,
                "deadline": self.deadline,
                "run_time": self.run_time,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.sdk import BaseHook

        try:
            await BaseHook.aget_connection(self.conn_id)  # fail fast, and asynchronously, if it is missing
        except Exception as e:
            yield TriggerEvent({"status": "error", "message": f"connection {self.conn_id!r}: {e}"})
            return
        polls = 0
        while True:
            polls += 1
            try:
                holds, detail = await asyncio.to_thread(self._poll)
            except Exception as e:
                yield TriggerEvent({"status": "error", "message": str(e), "polls": polls})
                return
            if holds:
                yield TriggerEvent({"status": "success", "detail": detail, "polls": polls})
                return
            if self.deadline is not None and time.time() + self.poll_interval > self.deadline:
                yield TriggerEvent({"status": "timeout", "detail": detail, "polls": polls})
                return
            self.log.info("condition not met yet (%s); next poll in %ss", detail, self.poll_interval)
            await asyncio.sleep(self.poll_interval)

    def _poll(self) -> tuple[bool, str]:
        return poll_condition(self.conn_id, self.dialect, self.sql, self.checks, self.statement_timeout,
                              datetime.fromisoformat(self.run_time) if self.run_time else None)


def poll_condition(
    conn_id: str, dialect: str | None, sql: str | None, checks: dict[str, Any] | None,
    statement_timeout: float | None, run_time: datetime | None = None,
) -> tuple[bool, str]:
    """Evaluate the condition once on a fresh connection (shared by the sensor's poke and the trigger).

    ``dialect`` overrides the one the connection type implies; ``run_time`` is the time freshness rules
    are judged at (the run's, so a retry or a backfill waits for the same data)."""
    from airflow_opsflow.checks.loader import load_suite
    from airflow_opsflow.connections.sql import dialect_of, get_db_hook
    from airflow_opsflow.flows.condition import condition_holds

    hook = get_db_hook(conn_id)
    real = dialect_of(hook, dialect)
    # Loaded in the connection's dialect: only that dialect's refused functions apply (as the sensor checked).
    suite = load_suite(checks, dialect=real) if checks is not None else None
    conn = hook.get_conn()
    try:
        return condition_holds(
            conn,
            real,
            sql=sql,
            suite=suite,
            statement_timeout=timedelta(seconds=statement_timeout) if statement_timeout else None,
            now=run_time,
        )
    finally:
        conn.close()
