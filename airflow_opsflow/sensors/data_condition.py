"""DataConditionSensor: wait until a SQL condition holds (today's partition has rows, a table is fresh)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, conf
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, AirflowSkipException

from airflow_opsflow.checks.durations import parse_duration
from airflow_opsflow.checks.jinja import has_jinja, with_placeholders
from airflow_opsflow.checks.loader import load_suite

if TYPE_CHECKING:
    from airflow.sdk import Context


class DataConditionSensor(BaseSensorOperator):
    """Wait until data is there. Give exactly one kind of condition:

    * ``sql``: a query whose first value is truthy once the condition holds
      (``SELECT count(*) > 0 FROM orders WHERE day = '{{ ds }}'``);
    * ``table`` (+ ``where``, ``min_rows``): at least ``min_rows`` rows (default 1) match;
    * ``table`` + ``freshness_column`` + ``max_age``: the newest row is at most ``max_age`` old;
    * ``checks``: a DataCheckOperator spec that must fully pass.

    Works in ``poke`` and ``reschedule`` mode, and deferred (``deferrable=True``): the wait then runs
    in the triggerer, polling in a worker thread so the triggerer's event loop is never blocked.

    :param conn_id: any SQL connection. (templated)
    :param sql: the condition query (templated; ``.sql`` files are read).
    :param table: the table to watch. (templated)
    :param where: a SQL filter on ``table``. (templated)
    :param min_rows: rows that must match (default 1).
    :param freshness_column: a timestamp column of ``table``; with ``max_age``.
    :param max_age: how old the newest ``freshness_column`` value may be (``"2h"``).
    :param checks: a check spec (see DataCheckOperator) that must pass. (templated)
    :param dialect: the sqlglot dialect, when the connection type does not tell it.
    :param statement_timeout: cancel one poll's query after this long (default: ``poke_interval``).
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("conn_id", "sql", "table", "where", "checks")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"sql": "sql", "where": "sql"}

    def __init__(
        self,
        *,
        conn_id: str,
        sql: str | None = None,
        table: str | None = None,
        where: str | None = None,
        min_rows: int = 1,
        freshness_column: str | None = None,
        max_age: str | int | timedelta | None = None,
        checks: Any = None,
        dialect: str | None = None,
        statement_timeout: str | int | timedelta | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.sql = sql
        self.table = table
        self.where = where
        self.min_rows = min_rows
        self.freshness_column = freshness_column
        self.max_age = max_age
        self.checks = checks
        self.dialect = dialect
        self.deferrable = deferrable
        who = f"task {self.task_id!r}"
        given = [n for n, v in (("sql", sql), ("table", table), ("checks", checks)) if v is not None]
        if len(given) != 1:
            raise ValueError(f"{who}: give exactly one of sql, table or checks (got {given or 'none'})")
        if (freshness_column is None) != (max_age is None):
            raise ValueError(f"{who}: freshness_column and max_age go together")
        if min_rows < 1:
            raise ValueError(f"{who}: min_rows must be at least 1")
        try:
            timeout = parse_duration(statement_timeout) if statement_timeout else None
        except ValueError as e:
            raise ValueError(f"{who}: statement_timeout: {e}") from None
        self.statement_timeout_s = (timeout or timedelta(seconds=max(self.poke_interval, 30))).total_seconds()
        if sql is None and not has_jinja(table) and not (isinstance(checks, str) and has_jinja(checks)):
            load_suite(self._spec(placeholder=True), context=who)  # parse-time validation

    def _spec(self, placeholder: bool = False) -> Any:
        """The condition as a check spec (table mode), or the user's spec (checks mode)."""
        if self.checks is not None:
            return with_placeholders(self.checks) if placeholder and isinstance(self.checks, str) else self.checks
        checks: list[dict[str, Any]] = [{"name": "rows", "kind": "row_count", "min": self.min_rows}]
        if self.freshness_column is not None:
            checks = [{"name": "fresh", "kind": "freshness", "column": self.freshness_column,
                       "max_age": parse_duration(self.max_age).total_seconds()}]
        return {"table": self.table, "where": self.where, "checks": checks}

    def _checks(self) -> dict[str, Any] | None:
        """The rendered condition as JSON-able check spec (None in ``sql`` mode)."""
        if self.sql is not None:
            return None
        suite = load_suite(self._spec(), context=f"task {self.task_id!r}")
        return suite.model_dump(by_alias=True, exclude_none=True, mode="json")

    def poke(self, context: Context) -> bool:
        from airflow_opsflow.checks.condition import ConditionError
        from airflow_opsflow.triggers.data_condition import poll_condition

        try:
            holds, detail = poll_condition(self.conn_id, self.dialect, self.sql, self._checks(),
                                           self.statement_timeout_s)
        except ConditionError as e:
            raise AirflowException(f"task {self.task_id!r}: the condition cannot be evaluated: {e}") from None
        self.log.info("condition %s: %s", "holds" if holds else "not met yet", detail)
        return holds

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):  # no need to defer when the data is already there
            return None
        from airflow_opsflow.triggers.data_condition import DataConditionTrigger

        deadline = time.time() + self.timeout if self.timeout is not None else None
        self.defer(
            trigger=DataConditionTrigger(self.conn_id, self.dialect, self.sql, self._checks(),
                                         float(self.poke_interval), self.statement_timeout_s, deadline),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout is not None else None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired; returns (to XCom) how many polls it took and what held."""
        if event.get("status") == "timeout":
            message = (f"task {self.task_id!r}: the condition did not hold within {self.timeout} s "
                       f"({event.get('polls')} polls; last: {event.get('detail')})")
            raise AirflowSkipException(message) if self.soft_fail else AirflowSensorTimeout(message)
        if event.get("status") != "success":
            raise AirflowException(f"task {self.task_id!r}: the condition cannot be evaluated: "
                                   f"{event.get('message')}")
        self.log.info("condition holds after %s poll(s) in the triggerer: %s", event.get("polls"),
                      event.get("detail"))
        return {"polls": event.get("polls"), "detail": event.get("detail")}
