"""IncidentNotifier: incident alerts for any task's callbacks and for a DAG's deadline alerts, with the same
lifecycle and routes as data checks: a failing task opens an incident (alerted once), its later success
resolves it; a DAG run that misses its deadline opens the DAG's deadline incident."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_opsflow.core.results import CheckResult
    from airflow_opsflow.flows.track_incidents import TaskRun
    from airflow_opsflow.incidents.lifecycle import Policy
    from airflow_opsflow.incidents.route import AlertRoute

# The "task" of a DAG-run incident (a deadline): never a real task id (those cannot hold a space), so a
# DAG's deadline incident and its tasks' incidents never share a key.
DAG_RUN = "dag run"


class IncidentNotifier(BaseNotifier):
    """Announce a task's failure (``on_failure_callback``) or recovery (``on_success_callback``), or a DAG
    run that missed its deadline (Airflow 3.1+ ``DeadlineAlert``).

    Task callbacks:

    .. code-block:: python

        alerts = [SlackAlert(conn_id="slack_api_default", channel="#data-ops")]
        BashOperator(
            task_id="dbt_build",
            bash_command="dbt build",
            on_failure_callback=send_incident_alert(alerts=alerts),
            on_success_callback=send_incident_alert(alerts=alerts, resolve=True),
        )

    Deadline alerts: the callback runs in the triggerer (``async_notify``; the state database and the
    routes are used in a worker thread, never on the triggerer's event loop). Airflow builds the notifier
    there from the callback's ``kwargs``, which are stored with the serialized DAG, so they must be plain
    values: ``alerts`` is then the dotted path of a module-level list of routes importable on the triggerer
    (a package installed there, or a module in its ``plugins/`` folder).

    .. code-block:: python

        # company_alerting/routes.py, installed on the triggerer
        ONCALL = [SlackAlert(conn_id="slack_api_default", channel="#data-ops")]

        # the DAG file
        from datetime import timedelta
        from airflow.sdk import DAG, AsyncCallback, DeadlineAlert, DeadlineReference
        from airflow_opsflow.notifiers.incident import IncidentNotifier

        with DAG(
            "nightly_load",
            deadline=DeadlineAlert(
                reference=DeadlineReference.DAGRUN_QUEUED_AT,
                interval=timedelta(hours=2),
                callback=AsyncCallback(
                    IncidentNotifier,
                    kwargs={
                        "alerts": "company_alerting.routes.ONCALL",
                        "description": "The nightly load feeds the 07:00 finance report",
                    },
                ),
            ),
        ):
            ...

    A deadline incident's key is the DAG and ``name`` (default ``deadline_missed``; give each of a DAG's
    deadline alerts its own). Its alert names the DAG run, the deadline and by how much it was missed
    (from the deadline to the run's end, or to the alert while the run is still going). Later runs that
    miss it are occurrences of the same open incident: set ``incident_policy={"remind_every_runs": 1}`` to
    hear of each. Nothing resolves it (Airflow calls back only on a miss).

    :param alerts: the routes (``SlackAlert``, ``EmailAlert``...), or the dotted path of a module-level list
        of them (what a deadline alert's ``kwargs`` can hold).
    :param resolve: this callback reports a success (resolving the task's open incident).
    :param name: the incident's name, with the DAG (and the task, in task callbacks) its key (default
        ``task_failed`` in task callbacks, ``deadline_missed`` in deadline alerts).
    :param description: what the failure means, shown in the alert. (templated: in a deadline alert the
        context holds ``dag_run`` and ``deadline``, e.g. ``{{ dag_run.dag_id }}``)
    :param severity: ``error`` (default) or ``warn``.
    :param incident_policy: pending/resolve/reminder settings (see DataCheckOperator).
    :param state_conn_id: the state database (default ``[opsflow] state_conn_id``).
    :param context: the context Airflow passes when it builds the notifier itself (a deadline alert's
        callback, in the triggerer); never set it yourself.
    """

    template_fields = ("description", "alerts", "state_conn_id")

    def __init__(
        self,
        *,
        alerts: Sequence[AlertRoute] | str,
        resolve: bool = False,
        name: str | None = None,
        description: str | None = None,
        severity: str = "error",
        incident_policy: Policy | dict[str, Any] | None = None,
        state_conn_id: str | None = None,
        context: Context | None = None,
    ) -> None:
        from airflow_opsflow.incidents.lifecycle import Policy

        super().__init__(context)
        if not alerts:
            raise ValueError("IncidentNotifier needs at least one alert route")
        if severity not in ("warn", "error"):
            raise ValueError(f"severity must be 'warn' or 'error', got {severity!r}")
        # A path is imported when the notifier runs (in the triggerer's worker thread), not here.
        self.alerts: list[AlertRoute] | str = alerts if isinstance(alerts, str) else list(alerts)
        self.resolve = resolve
        self.name = name
        self.description = description
        self.severity = severity
        self.incident_policy = Policy.of(incident_policy)
        self.state_conn_id = state_conn_id

    async def async_notify(self, context: Context) -> None:
        """The deadline alert callback (in the triggerer): ``notify`` in a worker thread, since the state
        database and the routes' HTTP calls are blocking and the triggerer's event loop runs every trigger."""
        await asyncio.to_thread(self.notify, context)

    def notify(self, context: Context) -> None:
        from airflow_opsflow.connections.state import state_store
        from airflow_opsflow.flows.track_incidents import track

        ti = context.get("ti")
        result, run, owner = self._task_failure(context, ti) if ti is not None else self._missed_deadline(context)
        routes = self._routes(owner)
        _, report = track([result], run, routes, self.incident_policy, state_store(self.state_conn_id, owner))
        for delivery_id, problem in report.failed:
            self.log.warning("alert %s not delivered (kept pending): %s", delivery_id, problem)

    def _task_failure(self, context: Context, ti: Any) -> tuple[CheckResult, TaskRun, str]:
        from airflow_opsflow.core.results import CheckResult
        from airflow_opsflow.flows.track_incidents import TaskRun

        error = context.get("exception")
        status = "pass" if self.resolve else ("fail" if self.severity == "error" else "warn")
        result = CheckResult(
            name=self.name or "task_failed", kind="task", table=None, status=status,  # type: ignore[arg-type]
            severity=self.severity,
            observed=None if self.resolve else f"try {ti.try_number} failed",
            expected="the task succeeds",
            message="" if self.resolve else f"{type(error).__name__}: {error}" if error else "the task failed",
            description=self.description,
        )
        return result, TaskRun.of(ti), f"dag {ti.dag_id!r}, task {ti.task_id!r}"

    def _missed_deadline(self, context: Context) -> tuple[CheckResult, TaskRun, str]:
        """A deadline alert's context (Airflow 3.1+): ``dag_run`` (the DAG run, as the REST API shows it)
        and ``deadline`` (``id``, ``deadline_time``); no task instance."""
        from airflow_opsflow.core.durations import format_duration
        from airflow_opsflow.core.results import CheckResult
        from airflow_opsflow.flows.track_incidents import TaskRun

        name = self.name or "deadline_missed"
        dag_run = context.get("dag_run")
        if dag_run is None:
            raise ValueError(f"IncidentNotifier {name!r}: the callback context has neither a task instance (ti) "
                             f"nor a dag_run (keys: {sorted(context)}); use it as a task callback or as a "
                             "DeadlineAlert callback")
        dag_id = str(_field(dag_run, "dag_id"))
        run_id = str(_field(dag_run, "dag_run_id") or _field(dag_run, "run_id"))
        owner = f"dag {dag_id!r}, deadline {name!r}"
        deadline = context.get("deadline") or {}
        due = _instant(deadline.get("deadline_time") if isinstance(deadline, Mapping) else None)
        if due is None:
            raise ValueError(f"{owner}: the callback context has no deadline time (deadline: {deadline!r})")
        ended = _instant(_field(dag_run, "end_date"))
        state = str(_field(dag_run, "state") or "unknown")
        late = format_duration((ended or datetime.now(UTC)) - due)
        queued = _instant(_field(dag_run, "queued_at"))
        since = f", queued at {_shown(queued)}" if queued else ""
        if ended is not None:
            observed = f"finished ({state}) at {_shown(ended)}, {late} after the deadline"
        else:
            observed = f"still {state} {late} after the deadline{since}"
        result = CheckResult(
            name=name, kind="deadline", table=None, status="fail" if self.severity == "error" else "warn",
            severity=self.severity, observed=observed, expected=f"the run finishes by {_shown(due)}",
            message=f"DAG run {run_id} missed its deadline {_shown(due)} by {late}",
            description=self.description,
        )
        return result, TaskRun(dag_id, DAG_RUN, run_id), owner

    def _routes(self, owner: str) -> list[AlertRoute]:
        if not isinstance(self.alerts, str):
            return self.alerts
        from airflow.sdk.module_loading import import_string

        try:
            routes = import_string(self.alerts)
        except ImportError as e:
            raise ImportError(f"{owner}: cannot import the alert routes {self.alerts!r}: {e}") from e
        if isinstance(routes, (str, bytes)) or not isinstance(routes, Sequence) or not routes:
            raise TypeError(f"{owner}: alerts={self.alerts!r} must name a non-empty list of alert routes, "
                            f"got {type(routes).__name__}")
        return list(routes)


def _field(obj: Any, name: str) -> Any:
    """A DAG run's field: a mapping in deadline contexts (the REST API's DAG run), an object elsewhere."""
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _instant(value: Any) -> datetime | None:
    """An aware UTC datetime from a datetime, ISO-8601 text, or Airflow's serialized form of one."""
    from airflow_opsflow.core.timestamps import parse_time

    if isinstance(value, Mapping) and isinstance(value.get("__var"), (int, float)):  # {"__type": "datetime", ...}
        return datetime.fromtimestamp(value["__var"], UTC)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return parse_time(value)


def _shown(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


send_incident_alert = IncidentNotifier
