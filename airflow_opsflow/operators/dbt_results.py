"""DbtResultsOperator: failing dbt tests as opsflow check results, incidents, alerts and tickets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_opsflow.operators.check_results import CheckResultsOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_opsflow.core.results import CheckResult


class DbtResultsOperator(CheckResultsOperator):
    """Read the results of the dbt command that ran before this task (``dbt build``, ``dbt test``: a
    ``BashOperator``, an astronomer-cosmos task group...) and treat its tests like opsflow checks: one
    result per test with its model, column, failures, severity and compiled SQL, a report in the log, XCom
    (``results``, usable by ``TicketOperator``), and incidents that alert once, update, and resolve when the
    test passes again. Run it with ``trigger_rule="all_done"`` so a failing dbt command still reports.

    Tests the command did not run (``--select``) say nothing; skipped tests (their model did not build)
    neither open nor resolve incidents; nodes that errored are reported as ``error`` results.

    :param target_path: dbt's ``target`` directory (``run_results.json`` and ``manifest.json``), or several
        (a list, or a glob such as ``/tmp/cosmos/*/target`` where an astronomer-cosmos callback copies each
        task's artifacts): their results are merged, the newest result of each node winning. (templated)
    :param conn_id: a SQL connection to the warehouse dbt built; when given, the failing rows of each
        failing data test are sampled by running its compiled SQL (read-only, ``sample_limit`` rows). (templated)
    :param sample_limit: failing rows fetched per failing test (default 10; 0: none).
    :param current_run_only: refuse results written before this DAG run (default True): when dbt fails to
        parse or compile it writes nothing, and the file in ``target`` is an earlier run's. With several
        targets, earlier runs' are skipped (a task that did not run this time) unless all are.
    :param include_errors: report models, seeds and snapshots that errored (default True).
    :param fail_on: statuses that fail this task (default ``("fail", "error")``).
    :param alerts: routes for the tests' incidents (``SlackAlert``, ``EmailAlert``, ``JiraTicket``). (templated:
        each route's own fields)
    :param incident_policy: when incidents open, remind and resolve (see ``DataCheckOperator``).
    :param state_conn_id: the state database (default ``[opsflow] state_conn_id``). (templated)
    :param on_alert_error: ``fail`` (default) or ``warn`` when an alert cannot be delivered.
    """

    template_fields: Sequence[str] = ("target_path", "conn_id", "alerts", "state_conn_id")
    ui_color = "#fde8e1"

    def __init__(
        self,
        *,
        target_path: str | list[str],
        conn_id: str | None = None,
        sample_limit: int = 10,
        current_run_only: bool = True,
        include_errors: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if sample_limit < 0:
            raise ValueError(f"{self._where_am_i()}: sample_limit must be >= 0")
        self.target_path = target_path
        self.conn_id = conn_id
        self.sample_limit = sample_limit
        self.current_run_only = current_run_only
        self.include_errors = include_errors

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_opsflow.dbt.artifacts import DbtArtifactError, StaleResultsError, load, merge
        from airflow_opsflow.dbt.results import to_check_results

        dag_run = context.get("dag_run")
        # run_after, not start_date: clearing the task alone restarts a finished run's start_date.
        started = (getattr(dag_run, "run_after", None) or getattr(dag_run, "start_date", None)
                   if self.current_run_only else None)
        targets = self._targets()
        runs = []
        for target in targets:
            try:
                runs.append(load(target, not_before=started))
            except StaleResultsError as e:
                if len(targets) == 1:
                    raise AirflowFailException(f"{self._where_am_i()}: {e}") from None
                self.log.warning("skipping %s: %s", target, e)  # e.g. a cosmos task that did not run this time
            except DbtArtifactError as e:
                raise AirflowFailException(f"{self._where_am_i()}: {e}") from None
        if not runs:
            raise AirflowFailException(f"{self._where_am_i()}: every dbt target is from an earlier run: "
                                       + ", ".join(targets))
        run = merge(runs)
        results = to_check_results(run, include_errors=self.include_errors)
        if not results:
            self.log.warning("dbt ran no tests (%s)", ", ".join(str(t) for t in targets))
        if self.conn_id and self.sample_limit:
            self._sample([r for r in results if r.status in ("fail", "warn")])
        return self.publish(results, context, what="dbt test", retry_errors=False, dbt_version=run.dbt_version,
                            invocation_id=run.invocation_id, command=run.command)

    def _targets(self) -> list[str]:
        import glob

        paths = [self.target_path] if isinstance(self.target_path, str) else list(self.target_path)
        found: list[str] = []
        for p in paths:
            found += sorted(glob.glob(p)) if glob.has_magic(p) else [p]
        if not found:
            raise AirflowFailException(f"{self._where_am_i()}: no dbt target directory matches {paths}")
        return found

    def _sample(self, failing: list[CheckResult]) -> None:
        """The failing rows of each failing test, from its compiled SQL, in one read-only session."""
        from airflow_opsflow.checks.session import QueryError, ReadOnlySession
        from airflow_opsflow.connections.sql import dialect_of, get_db_hook
        from airflow_opsflow.core.results import json_safe
        from airflow_opsflow.dbt.results import sample_query

        if not failing:
            return
        hook = get_db_hook(str(self.conn_id), self._where_am_i())
        dialect = dialect_of(hook)
        conn = hook.get_conn()
        try:
            with ReadOnlySession(conn, dialect, None, True) as session:
                for r in failing:
                    sql = sample_query(r, dialect, self.sample_limit)
                    if sql is None:
                        continue
                    try:
                        names, rows = session.query(sql, limit=self.sample_limit)
                    except QueryError as e:
                        r.message += f" (samples unavailable: {e})"
                        continue
                    r.samples = [json_safe(dict(zip(names, row, strict=True))) for row in rows]
        finally:
            conn.close()
