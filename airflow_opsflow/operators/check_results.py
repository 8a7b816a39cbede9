"""What every operator producing check results shares: the report in the log, the results in XCom, the
incidents and their alerts, and the task's outcome (DataCheckOperator, DbtResultsOperator)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_opsflow.incidents.lifecycle import Policy as IncidentPolicy
from airflow_opsflow.links import TICKETS_XCOM, JiraTicketLink, OpsViewLink
from airflow_opsflow.operators.naming import where_am_i
from airflow_opsflow.operators.templating import NestedTemplates, nested_template_errors

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_opsflow.core.results import CheckResult
    from airflow_opsflow.history.repo import RunRef
    from airflow_opsflow.incidents.route import AlertRoute

STATUSES = ("skipped", "warn", "fail", "error")


class CheckResultsOperator(NestedTemplates, BaseOperator):
    """Base of the operators whose outcome is a list of check results.

    :param fail_on: statuses that fail the task (default ``("fail", "error")``; add ``"warn"`` to be strict).
    :param alerts: where incidents are announced: ``[SlackAlert(...), EmailAlert(...), JiraTicket(...)]``. Each
        failing check is an incident (keyed by DAG, task and check), alerted when it opens, escalates, gets
        new entities, reminds and resolves, not on every failing run. Needs a state database. (templated, in
        the subclasses: each route's own fields, e.g. ``SlackAlert.channel``; give ``name=`` to keep the route
        id stable when where it sends is templated)
    :param incident_policy: when incidents open, remind and resolve (an ``IncidentPolicy`` or its fields as
        a dict: ``pending_runs``, ``resolve_runs``, ``remind_every_runs``, ``remind_every``).
    :param state_conn_id: the state database (default ``[opsflow] state_conn_id``). (templated, in the subclasses)
    :param on_alert_error: ``fail`` (default: the task fails, and its retry re-sends only what is still
        pending) or ``warn`` (logged, task result unchanged) when an alert cannot be delivered. The
        incident state is kept either way.
    :param record_history: record each result in the state database's result history (docs/history.md);
        default ``[opsflow] result_history`` (on). Without a state database nothing is recorded.
    """

    operator_extra_links = (JiraTicketLink(), OpsViewLink())

    def __init__(
        self,
        *,
        fail_on: Sequence[str] = ("fail", "error"),
        alerts: Sequence[AlertRoute] | None = None,
        incident_policy: IncidentPolicy | dict[str, Any] | None = None,
        state_conn_id: str | None = None,
        on_alert_error: str = "fail",
        record_history: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.record_history = record_history
        bad = [s for s in fail_on if s not in STATUSES]
        if bad:
            raise ValueError(f"{self._where_am_i()}: fail_on has unknown statuses {bad}; use {STATUSES}")
        self.fail_on = tuple(fail_on)
        self.alerts = list(alerts or [])
        self.state_conn_id = state_conn_id
        if on_alert_error not in ("fail", "warn"):
            raise ValueError(f"{self._where_am_i()}: on_alert_error must be 'fail' or 'warn'")
        self.on_alert_error = on_alert_error
        try:
            self.incident_policy = IncidentPolicy.of(incident_policy)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{self._where_am_i()}: incident_policy: {e}") from None
        names = [r.name for r in self.alerts]
        if len(set(names)) != len(names):
            raise ValueError(f"{self._where_am_i()}: two alert routes share a name {names}; pass name= to tell "
                             "them apart")
        broken = nested_template_errors(self.alerts, "alerts")
        if broken:
            raise ValueError(f"{self._where_am_i()}: {'; '.join(broken)}")

    def _where_am_i(self) -> str:
        return where_am_i(self)

    def publish(self, results: list[CheckResult], context: Context, what: str = "data check",
                retry_errors: bool = True, **extra: Any) -> dict[str, Any]:
        """Log the report, push the results (XCom ``return_value`` and ``results``), track incidents and
        deliver their alerts, then fail the task if a result's status is in ``fail_on``: without retry for
        data failures (retrying does not fix data), with retries when checks could not run or alerts
        could not be delivered (the retry sends only what is still pending). ``retry_errors=False``: checks
        that could not run fail without retry too (their cause is already written down, e.g. dbt's)."""
        from airflow_opsflow.checks.report import format_report
        from airflow_opsflow.core.results import worst

        self.log.info("\n%s", format_report(results, title=self._where_am_i()))
        self._lineage_results = list(results)  # for get_openlineage_facets_on_complete, after execute
        payload: dict[str, Any] = {"status": worst(results), **extra, "results": [r.to_dict() for r in results]}
        # Pushed before alerting or failing the task: alerting and ticketing downstream need the evidence.
        context["ti"].xcom_push(key="results", value=payload)
        self._record(results, context)
        self._verdict_on_assets(results, context)
        alert_errors: list[tuple[str, str]] = []
        if self.alerts:
            incidents, alert_errors = self._alert(results, context)
            payload["incidents"] = incidents
            context["ti"].xcom_push(key="incidents", value=incidents)
            tickets = [t for i in incidents for t in i["tickets"] if i["status"] != "resolved"]
            context["ti"].xcom_push(key=TICKETS_XCOM, value=tickets)
        failing = [r for r in results if r.status in self.fail_on]
        names = ", ".join(f"{r.name} ({r.status})" for r in failing)
        if alert_errors and self.on_alert_error == "fail":
            raise AirflowException(
                f"{self._where_am_i()}: {len(alert_errors)} alert(s) could not be delivered and are kept pending "
                "for the next try or run: " + "; ".join(e for _, e in alert_errors)
                + (f". Checks that did not pass: {names}" if failing else ""))
        if failing:
            if any(r.status != "error" for r in failing) or not retry_errors:
                raise AirflowFailException(f"{len(failing)} {what}(s) did not pass: {names}")
            raise AirflowException(f"{len(failing)} {what}(s) could not run: {names}")
        return payload

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/lineage.md): each checked table of ``conn_id`` as an input dataset with one
        assertion per check, and the run's ``test`` facet for checks on no table of it. Also called when
        the task failed (the provider's default for ``on_failure``), when the verdict matters most."""
        from airflow_opsflow.lineage import SqlNaming, check_lineage

        conn_id = getattr(self, "conn_id", None)
        naming = None
        if conn_id:
            try:
                naming = SqlNaming(conn_id, self._where_am_i())
            except Exception as e:  # lineage must not hide the verdict: the tests still go to the run facet
                self.log.warning("OpenLineage: connection %r gives no dataset names: %s", conn_id, e)
        return check_lineage(getattr(self, "_lineage_results", []), naming)

    def _verdict_on_assets(self, results: list[CheckResult], context: Context) -> None:
        """The verdict on each Asset outlet's event (what QualityGateOperator reads downstream). Airflow
        emits outlet events only when the task succeeds: with the default ``fail_on`` a failing run emits
        none, so an asset-scheduled DAG does not run at all."""
        from airflow_opsflow.operators.quality_gate import quality_extra

        events = context.get("outlet_events")
        assets = [o for o in self.outlets or [] if type(o).__name__ == "Asset"]
        if events is None or not assets:
            return
        ti = context["ti"]
        extra = quality_extra(results, {"dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id})
        for asset in assets:
            events[asset].extra = {**(events[asset].extra or {}), **extra}

    def _record(self, results: list[CheckResult], context: Context) -> None:
        """The results into the result history. A state database that fails here does not fail the task:
        the verdict stands and is in XCom and the log; the warning says what is missing."""
        from airflow_opsflow.connections.state import result_history
        from airflow_opsflow.incidents.lifecycle import fingerprint
        from airflow_opsflow.state.store import StateStoreError

        history = result_history(self.state_conn_id, self._where_am_i(), self.record_history)
        if history is None:
            return
        run = history_run(context)
        try:
            history.record_checks(run, results, {r.name: fingerprint(run.dag_id, run.task_id, r.name)
                                                 for r in results})
        except StateStoreError as e:
            self.log.warning("%s: the result history was not recorded for this run: %s", self._where_am_i(), e)
        finally:
            history.store.close()

    def _alert(self, results: list[CheckResult], context: Context) -> tuple[list[dict[str, Any]], list[Any]]:
        from airflow_opsflow.connections.state import state_store
        from airflow_opsflow.flows.track_incidents import TaskRun, track

        run = TaskRun.of(context["ti"])
        summary, report = track(results, run, self.alerts, self.incident_policy,
                                state_store(self.state_conn_id, self._where_am_i()))
        for delivery_id, error in report.failed:
            self.log.warning("alert %s not delivered: %s", delivery_id, error)
        if report.sent:
            self.log.info("%d alert(s) delivered", len(report.sent))
        return summary, report.failed


def run_time(context: Context | None) -> datetime | None:
    """The time a run is judged at (freshness deadlines and ages, metric buckets, entity ages): the end of
    its data interval (a retry or a backfill of that run judges the same way), else its logical date, else
    when the run was due. None outside a run: the current time."""
    if context is None:
        return None
    for key in ("data_interval_end", "logical_date"):
        value = context.get(key)
        if value is not None:
            return value  # type: ignore[return-value]
    dag_run = context.get("dag_run")
    return getattr(dag_run, "run_after", None)


def history_run(context: Context) -> RunRef:
    """The task run a result-history row belongs to (the task keyed with its map index, as incidents are)."""
    from airflow_opsflow.flows.track_incidents import TaskRun
    from airflow_opsflow.history.repo import RunRef

    task = TaskRun.of(context["ti"])
    return RunRef(task.dag_id, task.task_key, task.run_id, getattr(context["ti"], "try_number", None),
                  run_time(context))
