"""DataCheckOperator: run a suite of data checks on any SQL connection, in as few scans as possible."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_opsflow.checks.loader import CheckSpecError, load_suite
from airflow_opsflow.core.durations import parse_statement_timeout
from airflow_opsflow.core.jinja import (
    has_jinja_anywhere,
    template_errors,
    with_placeholders,
    with_placeholders_anywhere,
)
from airflow_opsflow.operators.check_results import CheckResultsOperator, run_time

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_opsflow.checks.spec import Suite
    from airflow_opsflow.core.results import CheckResult


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
    :param dialect: the sqlglot dialect, when the connection type does not tell it. Given, the spec's SQL
        is parsed in it when the DAG is parsed, and only that dialect's refused functions apply;
        otherwise that happens with the connection's dialect at run time, after a first parse that
        accepts any common dialect and refuses every family of functions.
    :param allow_functions: functions the spec may call although opsflow refuses them as side effects
        (``["set_config"]``; see "What is refused when the DAG is parsed" in docs/checks.md).
    :param fail_on: statuses that fail the task (default ``("fail", "error")``; add ``"warn"`` to be strict).
    :param statement_timeout: cancel any single query running longer (``"5m"``, seconds or timedelta).
    :param read_only: run inside a read-only transaction (default True).
    :param alerts: where incidents are announced: ``[SlackAlert(...), EmailAlert(...), JiraTicket(...)]``.
        Each failing check is an incident (keyed by DAG, task and check), alerted when it opens, escalates,
        gets new entities, reminds and resolves, not on every failing run. Needs a state database. (templated:
        each route's own fields, e.g. ``SlackAlert(channel="{{ params.channel }}")``; see docs/alerts.md)
    :param incident_policy: when incidents open, remind and resolve (an ``IncidentPolicy`` or its fields as
        a dict: ``pending_runs``, ``resolve_runs``, ``remind_every_runs``, ``remind_every``).
    :param state_conn_id: the state database (default ``[opsflow] state_conn_id``): incidents, metric
        history (``metric`` checks) and tracked entities (checks with ``entity``) live there. (templated)
    :param on_alert_error: ``fail`` (default: the task fails, and its retry re-sends only what is still
        pending) or ``warn`` (logged, task result unchanged) when an alert cannot be delivered. The
        incident state is kept either way.
    """

    template_fields: Sequence[str] = ("conn_id", "checks", "table", "where", "alerts", "state_conn_id")
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
        allow_functions: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.checks = checks
        self.table = table
        self.where = where
        self.dialect = dialect
        where_am_i = self._where_am_i()
        try:
            self.statement_timeout = parse_statement_timeout(statement_timeout) if statement_timeout else None
        except ValueError as e:
            raise CheckSpecError([f"field 'statement_timeout': {e}"], where_am_i) from None
        self.allow_functions = _function_names(allow_functions, where_am_i)
        self._parse_dialect = _sqlglot_dialect(dialect, where_am_i)
        self.read_only = read_only
        if not self._is_template_file(checks):
            self._validate()  # fail at DAG parse, not at 3 a.m.

    def _is_template_file(self, value: Any) -> bool:
        return isinstance(value, str) and "\n" not in value and value.strip().endswith(tuple(self.template_ext))

    def prepare_template(self) -> None:
        # Called after template files are read at DAG parse: validate the YAML file's content too.
        if self._is_template_file(self.checks):
            # Airflow could not read the file (it logs why and leaves the path): it would fail at run time.
            env = self._template_env()
            searched = [str(p) for p in getattr(getattr(env, "loader", None), "searchpath", [])]
            raise CheckSpecError([f"field 'checks': check file {self.checks.strip()!r} not found (paths are "
                                  f"relative to the DAG's folder or template_searchpath: {searched})"],
                                 self._where_am_i())
        self._validate()

    def _template_env(self) -> Any:
        try:
            return self.get_template_env()
        except Exception:  # no DAG yet, or a DAG whose Jinja settings fail: the default environment
            return None

    def _validate(self) -> Suite | None:
        """Validate the spec now: Jinja syntax, structure, SQL. Jinja expressions (rendered only at run
        time) are replaced by a placeholder; an error that may come from a placeholder waits for the run,
        any other error is raised."""
        where_am_i = self._where_am_i()
        env = self._template_env()
        spec_fields = ("conn_id", "checks", "table", "where")  # (routes are checked by CheckResultsOperator)
        broken = [p for field in spec_fields for p in template_errors(getattr(self, field), field, env)]
        if broken:
            raise CheckSpecError(broken, where_am_i)
        templated = any(has_jinja_anywhere(getattr(self, field)) for field in spec_fields)
        table = with_placeholders(self.table) if self.table else None
        where = with_placeholders(self.where) if self.where else None
        try:
            return load_suite(with_placeholders_anywhere(self.checks), table=table, where=where, context=where_am_i,
                              dialect=self._parse_dialect, allow_functions=self.allow_functions)
        except CheckSpecError as e:
            if not (templated and e.only_placeholders()):
                raise
            self.log.debug("spec validation deferred to run time (templated spec): %s", e)
            return None

    def run_checks(self, context: Context | None = None) -> list[dict[str, Any]]:
        """Run the (rendered) checks and return the results as dicts; raises nothing for data failures."""
        return [r.to_dict() for r in self._run(context)]

    def _run(self, context: Context | None = None) -> list[CheckResult]:
        from airflow_opsflow.connections.sql import dialect_of, get_db_hook
        from airflow_opsflow.flows.check_suite import run_suite

        hook = get_db_hook(self.conn_id, self._where_am_i())
        dialect = dialect_of(hook, self.dialect)
        try:  # the rendered spec, its SQL parsed in the connection's dialect: before any query is sent
            suite = load_suite(self.checks, table=self.table, where=self.where, context=self._where_am_i(),
                               dialect=dialect, allow_functions=self.allow_functions,
                               dialect_of_conn=self._side_dialect)
        except CheckSpecError as e:
            raise AirflowFailException(str(e)) from None  # a spec error does not heal by retrying
        history, store, entities = None, None, None
        stateful = [c for _, c in suite.all_checks() if c.kind == "metric" or c.entity]  # type: ignore[attr-defined]
        if stateful:
            from airflow_opsflow.connections.state import state_store
            from airflow_opsflow.incidents.entity_repo import EntityRepo
            from airflow_opsflow.monitors.repo import MetricRepo

            store = state_store(self.state_conn_id, self._where_am_i())
            history = MetricRepo(store)
            entities = self._entity_tracking(EntityRepo(store), context)
        conn = hook.get_conn()
        at = run_time(context)  # every time-based check is judged at the run's time, not the wall clock
        try:
            return run_suite(conn, suite, dialect, statement_timeout=self.statement_timeout,
                             read_only=self.read_only, now=at, history=history,
                             history_key=self._history_key(context), metrics_at=at, connect=self._connect,
                             entities=entities, api=self._api_client)
        finally:
            conn.close()
            if store is not None:
                store.close()

    def _connect(self, conn_id: str | None) -> tuple[Any, str]:
        """A reconcile side's connection factory and dialect (None: this operator's connection)."""
        from airflow_opsflow.connections.sql import dialect_of, get_db_hook

        hook = get_db_hook(conn_id or self.conn_id, self._where_am_i())
        return hook.get_conn, dialect_of(hook, None if conn_id else self.dialect)

    def _side_dialect(self, conn_id: str) -> str:
        """A reconcile side's SQL dialect: its database's, or SQLite's on an API (staged there)."""
        from airflow_opsflow.hooks.api_clients import is_api_connection

        return "sqlite" if is_api_connection(conn_id) else self._connect(conn_id)[1]

    def _api_client(self, system: str, conn_id: str | None) -> Any:
        """The client of a reconcile side on an API (HubSpot, Salesforce, Zendesk)."""
        from airflow_opsflow.hooks.api_clients import api_client

        return api_client(system, conn_id, self._where_am_i())

    def _entity_tracking(self, repo: Any, context: Context | None) -> Any:
        """Entities belong to the check's incident (DAG, task, map index, check); a retry of a run reports
        the entities that run found new as new again."""
        from airflow_opsflow.flows.check_suite import EntityTracking
        from airflow_opsflow.flows.track_incidents import TaskRun
        from airflow_opsflow.incidents.lifecycle import fingerprint

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


def _function_names(names: Any, where_am_i: str) -> tuple[str, ...]:
    """``allow_functions``: a list of function names (a bare string would allow its letters)."""
    if isinstance(names, str) or not all(isinstance(n, str) and n.strip() for n in names):
        raise CheckSpecError([f"field 'allow_functions': expected a list of function names such as "
                              f"['set_config'], got {names!r}"], where_am_i)
    return tuple(n.strip().lower() for n in names)


def _sqlglot_dialect(name: str | None, where_am_i: str) -> str | None:
    from airflow_opsflow.core.dialects import to_sqlglot_dialect

    try:
        return to_sqlglot_dialect(name) if name else None
    except ValueError as e:
        raise CheckSpecError([f"field 'dialect': {e}"], where_am_i) from None
