"""DataCheckOperator: run a suite of data checks on any SQL connection, in as few scans as possible."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_opsflow.checks.durations import parse_duration
from airflow_opsflow.checks.jinja import caused_by_placeholder, has_jinja, with_placeholders
from airflow_opsflow.checks.loader import CheckSpecError, load_suite
from airflow_opsflow.operators.check_results import CheckResultsOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_opsflow.checks.results import CheckResult
    from airflow_opsflow.checks.spec import Suite


class DataCheckOperator(CheckResultsOperator):
    """Check critical data where it lives: one task, many checks, one table scan per table and filter.

    The spec is validated when the DAG is parsed; the checks run in a read-only transaction (where the
    database supports it), their results are pushed to XCom (``return_value`` and key ``results``) and
    logged as a report. The task fails without retrying when a check of severity ``error`` fails (a data
    failure does not heal by retrying) and fails with retries when a check could not run at all.

    :param conn_id: any SQL connection (postgres, mysql, sqlite, snowflake, bigquery, ...). (templated)
    :param checks: the checks: a list of check dicts/models, a mapping (``{"table": ..., "checks": [...]}``
        or ``{"tables": [...]}``), YAML text, or a path to a ``.yml``/``.yaml`` file. (templated)
    :param table: default table of a single-table spec. (templated)
    :param where: a SQL condition applied to every check of a single-table spec, e.g.
        ``"created_at >= '{{ data_interval_start }}'"``. (templated)
    :param dialect: the sqlglot dialect, when the connection type does not tell it.
    :param fail_on: statuses that fail the task (default ``("fail", "error")``; add ``"warn"`` to be strict).
    :param statement_timeout: cancel any single query running longer (``"5m"``, seconds or timedelta).
    :param read_only: run inside a read-only transaction (default True).
    :param alerts: where incidents are announced: ``[SlackAlert(...), EmailAlert(...), JiraTicket(...)]``.
        Each failing check is an incident (keyed by DAG, task and check), alerted when it opens, escalates,
        gets new entities, reminds and resolves, not on every failing run. Needs a state database.
    :param incident_policy: when incidents open, remind and resolve (an ``IncidentPolicy`` or its fields as
        a dict: ``pending_runs``, ``resolve_runs``, ``remind_every_runs``, ``remind_every``).
    :param state_conn_id: the state database (default ``[opsflow] state_conn_id``): incidents, metric
        history (``metric`` checks) and tracked entities (checks with ``entity``) live there.
    :param on_alert_error: ``fail`` (default: the task fails, and its retry re-sends only what is still
        pending) or ``warn`` (logged, task result unchanged) when an alert cannot be delivered. The
        incident state is kept either way.
    """

    template_fields: Sequence[str] = ("conn_id", "checks", "table", "where")
    template_ext: Sequence[str] = (".yml", ".yaml")
    template_fields_renderers = {"checks": "yaml", "where": "sql"}
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        conn_id: str,
        checks: Any,
        table: str | None = None,
        where: str | None = None,
        dialect: str | None = None,
        statement_timeout: str | int | timedelta | None = None,
        read_only: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.checks = checks
        self.table = table
        self.where = where
        self.dialect = dialect
        try:
            self.statement_timeout = parse_duration(statement_timeout) if statement_timeout else None
        except ValueError as e:
            raise ValueError(f"{self._where_am_i()}: statement_timeout: {e}") from None
        self.read_only = read_only
        if not self._is_template_file(checks):
            self._validate()  # fail at DAG parse, not at 3 a.m.

    def _is_template_file(self, value: Any) -> bool:
        return isinstance(value, str) and "\n" not in value and value.strip().endswith(tuple(self.template_ext))

    def prepare_template(self) -> None:
        # Called after template files are read at DAG parse: validate the YAML file's content too.
        if not self._is_template_file(self.checks):
            self._validate()

    def _validate(self) -> Suite | None:
        """Validate the spec's structure now. Jinja (rendered only at run time) is replaced by a
        placeholder; an error on a placeholder value waits for the run, any other error is raised."""
        templated = has_jinja(self.table) or (isinstance(self.checks, str) and has_jinja(self.checks))
        checks = with_placeholders(self.checks) if isinstance(self.checks, str) else self.checks
        table = with_placeholders(self.table) if self.table else None
        try:
            return load_suite(checks, table=table, where=self.where, context=self._where_am_i())
        except CheckSpecError as e:
            if not (templated and caused_by_placeholder(e.inputs)):
                raise
            self.log.debug("spec validation deferred to run time (templated spec): %s", e)
            return None

    def run_checks(self, context: Context | None = None) -> list[dict[str, Any]]:
        """Run the (rendered) checks and return the results as dicts; raises nothing for data failures."""
        return [r.to_dict() for r in self._run(context)]

    def _run(self, context: Context | None = None) -> list[CheckResult]:
        from airflow_opsflow.checks.runner import run_suite
        from airflow_opsflow.hooks.db import dialect_of, get_db_hook

        try:
            suite = load_suite(self.checks, table=self.table, where=self.where, context=self._where_am_i())
        except CheckSpecError as e:
            raise AirflowFailException(str(e)) from None
        hook = get_db_hook(self.conn_id, self._where_am_i())
        dialect = dialect_of(hook, self.dialect)
        history, store, entities = None, None, None
        stateful = [c for _, c in suite.all_checks() if c.kind == "metric" or c.entity]  # type: ignore[attr-defined]
        if stateful:
            from airflow_opsflow.hooks.state import state_store
            from airflow_opsflow.state.entities import EntityRepo
            from airflow_opsflow.state.metrics import MetricRepo

            store = state_store(self.state_conn_id, self._where_am_i())
            history = MetricRepo(store)
            entities = self._entity_tracking(EntityRepo(store), context)
        conn = hook.get_conn()
        try:
            return run_suite(conn, suite, dialect, statement_timeout=self.statement_timeout,
                             read_only=self.read_only, history=history, history_key=self._history_key(context),
                             metrics_at=_run_time(context), connect=self._connect, entities=entities)
        finally:
            conn.close()
            if store is not None:
                store.close()

    def _connect(self, conn_id: str | None) -> tuple[Any, str]:
        """A reconcile side's connection factory and dialect (None: this operator's connection)."""
        from airflow_opsflow.hooks.db import dialect_of, get_db_hook

        hook = get_db_hook(conn_id or self.conn_id, self._where_am_i())
        return hook.get_conn, dialect_of(hook, None if conn_id else self.dialect)

    def _entity_tracking(self, repo: Any, context: Context | None) -> Any:
        """Entities belong to the check's incident (DAG, task, map index, check); a retry of a run reports
        the entities that run found new as new again."""
        from airflow_opsflow.checks.runner import EntityTracking
        from airflow_opsflow.incidents.lifecycle import fingerprint
        from airflow_opsflow.notifications.tracking import TaskRun

        if context is not None:
            run = TaskRun.of(context["ti"])
        else:  # run_checks() outside a task: its own entities, so the task's are left alone
            dag_id = self.dag_id if self.has_dag() else "-"
            run = TaskRun(dag_id, f"{self.task_id} (ad hoc)", datetime.now().isoformat())
        return EntityTracking(repo, run.run_id, lambda check: fingerprint(run.dag_id, run.task_key, check))

    def _history_key(self, context: Context | None) -> str:
        """Metric histories belong to the DAG and task (and map index): a retry or the next run finds them."""
        dag_id = self.dag_id if self.has_dag() else "-"
        index = getattr(context["ti"], "map_index", -1) if context is not None else -1
        return f"{dag_id}/{self.task_id}" + (f"[{index}]" if index is not None and index >= 0 else "")

    def execute(self, context: Context) -> dict[str, Any]:
        return self.publish(self._run(context), context, conn_id=self.conn_id)


def _run_time(context: Context | None) -> datetime | None:
    """The time a run's metrics are stamped with: the end of its data interval (a retry or a backfill of
    that run judges the same buckets), else when the run was due."""
    if context is None:
        return None
    for key in ("data_interval_end", "logical_date"):
        value = context.get(key)
        if value is not None:
            return value  # type: ignore[return-value]
    dag_run = context.get("dag_run")
    return getattr(dag_run, "run_after", None)
