"""DataConditionSensor: wait until a SQL condition holds (today's partition has rows, a table is fresh)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout, AirflowSkipException

from airflow_opsflow.checks.loader import CheckSpecError, load_suite
from airflow_opsflow.core.durations import parse_duration, parse_statement_timeout
from airflow_opsflow.core.jinja import has_jinja_anywhere, template_errors, with_placeholders_anywhere

if TYPE_CHECKING:
    from airflow.sdk import Context


class DataConditionSensor(BaseSensorOperator):
    """Wait until data is there. Give exactly one kind of condition:

    * ``sql``: a query whose first value is truthy once the condition holds
      (``SELECT count(*) > 0 FROM orders WHERE day = '{{ ds }}'``);
    * ``table`` (+ ``where``, ``min_rows``): at least ``min_rows`` rows (default 1) match;
    * ``table`` + ``freshness_column`` + ``max_age``: the newest row is at most ``max_age`` old;
    * ``checks``: a DataCheckOperator spec that must fully pass.

    Freshness (``max_age``, deadlines) is judged at the run's time, as DataCheckOperator does: the end
    of its data interval, else its logical date, else when it was due.

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
    :param allow_functions: functions the SQL may call although opsflow refuses them as side effects
        (see DataCheckOperator).
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
        allow_functions: Sequence[str] = (),
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
            timeout = parse_statement_timeout(statement_timeout) if statement_timeout else None
        except ValueError as e:
            raise CheckSpecError([f"field 'statement_timeout': {e}"], who) from None
        if max_age is not None:
            try:
                self.max_age = parse_duration(max_age)
            except ValueError as e:
                raise CheckSpecError([f"field 'max_age': {e}"], who) from None
        if isinstance(allow_functions, str) or not all(isinstance(n, str) for n in allow_functions):
            raise CheckSpecError([f"field 'allow_functions': expected a list of function names, got "
                                  f"{allow_functions!r}"], who)
        self.allow_functions = tuple(n.strip().lower() for n in allow_functions)
        self.statement_timeout_s = (timeout or timedelta(seconds=max(self.poke_interval, 30))).total_seconds()
        if not (isinstance(sql, str) and sql.strip().endswith(tuple(self.template_ext))):
            self._validate()  # parse-time validation (a .sql file: once Airflow has read it)

    def prepare_template(self) -> None:
        if not (isinstance(self.sql, str) and self.sql.strip().endswith(tuple(self.template_ext))):
            self._validate()

    def _validate(self) -> None:
        """Validate the condition now, Jinja replaced by placeholders as DataCheckOperator does."""
        from airflow_opsflow.checks.sql_safety import UnsafeSqlError, check_query
        from airflow_opsflow.core.dialects import to_sqlglot_dialect
        from airflow_opsflow.core.sqlparts import SqlFragmentError

        who = f"task {self.task_id!r}"
        try:
            dialect = to_sqlglot_dialect(self.dialect) if self.dialect else None
        except ValueError as e:
            raise CheckSpecError([f"field 'dialect': {e}"], who) from None
        broken = [p for field in self.template_fields for p in template_errors(getattr(self, field), field)]
        if broken:
            raise CheckSpecError(broken, who)
        templated = any(has_jinja_anywhere(getattr(self, field)) for field in self.template_fields)
        if self.sql is not None:
            try:
                check_query(with_placeholders_anywhere(self.sql), dialect, self.allow_functions)
            except SqlFragmentError as e:
                if templated and not isinstance(e, UnsafeSqlError):
                    return  # may come from a placeholder: checked again once rendered
                raise CheckSpecError([f"field 'sql': {e}"], who) from None
            return
        try:
            load_suite(with_placeholders_anywhere(self._spec()), context=who, dialect=dialect,
                       allow_functions=self.allow_functions)
        except CheckSpecError as e:
            if not (templated and e.only_placeholders()):
                raise

    def _spec(self) -> Any:
        """The condition as a check spec (table mode), or the user's spec (checks mode)."""
        if self.checks is not None:
            return self.checks
        checks: list[dict[str, Any]] = [{"name": "rows", "kind": "row_count", "min": self.min_rows}]
        if self.freshness_column is not None:
            checks = [{"name": "fresh", "kind": "freshness", "column": self.freshness_column,
                       "max_age": parse_duration(self.max_age).total_seconds()}]
        return {"table": self.table, "where": self.where, "checks": checks}

    def _checks(self, dialect: str | None = None) -> dict[str, Any] | None:
        """The rendered condition as JSON-able check spec (None in ``sql`` mode), its SQL checked in
        ``dialect``; a spec error fails the task without retry (waiting does not fix it)."""
        from airflow_opsflow.checks.sql_safety import check_query
        from airflow_opsflow.core.sqlparts import SqlFragmentError

        who = f"task {self.task_id!r}"
        if self.sql is not None:
            if dialect is not None:
                try:
                    check_query(self.sql, dialect, self.allow_functions)
                except SqlFragmentError as e:
                    raise AirflowFailException(f"{who}: field 'sql': {e}") from None
            return None
        try:
            suite = load_suite(self._spec(), context=who, dialect=dialect, allow_functions=self.allow_functions)
        except CheckSpecError as e:
            raise AirflowFailException(str(e)) from None
        dumped = suite.model_dump(by_alias=True, exclude_none=True, mode="json")
        # Loaded again where it is polled: it keeps its opt-out.
        dumped["allow_functions"] = sorted({*suite.allow_functions, *self.allow_functions})
        return dumped

    def _checked(self) -> dict[str, Any] | None:
        """:meth:`_checks` in the connection's dialect, once per try: the rendered spec does not change
        between pokes, so neither the connection lookup nor the parse is repeated every poke_interval."""
        if not hasattr(self, "_checked_spec"):
            self._checked_spec = self._checks(self._dialect())
        return self._checked_spec

    def _dialect(self) -> str:
        from airflow_opsflow.connections.sql import dialect_of, get_db_hook

        return dialect_of(get_db_hook(self.conn_id, f"task {self.task_id!r}"), self.dialect)

    def poke(self, context: Context) -> bool:
        from airflow_opsflow.flows.condition import ConditionError
        from airflow_opsflow.operators.check_results import run_time
        from airflow_opsflow.triggers.data_condition import poll_condition

        checks = self._checked()  # before any query: a bad spec is not worth a poll
        try:
            holds, detail = poll_condition(self.conn_id, self.dialect, self.sql, checks,
                                           self.statement_timeout_s, run_time(context))
        except ConditionError as e:
            raise AirflowException(f"task {self.task_id!r}: the condition cannot be evaluated: {e}") from None
        self.log.info("condition %s: %s", "holds" if holds else "not met yet", detail)
        return holds

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):  # no need to defer when the data is already there
            return None
        from airflow_opsflow.operators.check_results import run_time
        from airflow_opsflow.triggers.data_condition import DataConditionTrigger

        deadline = time.time() + self.timeout if self.timeout is not None else None
        at = run_time(context)
        self.defer(
            trigger=DataConditionTrigger(self.conn_id, self.dialect, self.sql, self._checked(),
                                         float(self.poke_interval), self.statement_timeout_s, deadline,
                                         at.isoformat() if at is not None else None),
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
