"""IncidentNotifier: incident alerts for any task's callbacks, with the same lifecycle and routes as
data checks: a failing task opens an incident (alerted once), its later success resolves it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_opsflow.incidents.lifecycle import Policy
    from airflow_opsflow.incidents.route import AlertRoute


class IncidentNotifier(BaseNotifier):
    """Announce a task's failure (``on_failure_callback``) or recovery (``on_success_callback``).

    .. code-block:: python

        alerts = [SlackAlert(conn_id="slack_api_default", channel="#data-ops")]
        BashOperator(
            task_id="dbt_build",
            bash_command="dbt build",
            on_failure_callback=send_incident_alert(alerts=alerts),
            on_success_callback=send_incident_alert(alerts=alerts, resolve=True),
        )

    :param alerts: the routes (``SlackAlert``, ``EmailAlert``...).
    :param resolve: this callback reports a success (resolving the task's open incident).
    :param name: the incident's name, with the DAG and task its key (default ``task_failed``).
    :param description: what the task's failure means, shown in the alert. (templated)
    :param severity: ``error`` (default) or ``warn``.
    :param incident_policy: pending/resolve/reminder settings (see DataCheckOperator).
    :param state_conn_id: the state database (default ``[opsflow] state_conn_id``).
    """

    template_fields = ("description",)

    def __init__(
        self,
        *,
        alerts: Sequence[AlertRoute],
        resolve: bool = False,
        name: str = "task_failed",
        description: str | None = None,
        severity: str = "error",
        incident_policy: Policy | dict[str, Any] | None = None,
        state_conn_id: str | None = None,
    ) -> None:
        from airflow_opsflow.incidents.lifecycle import Policy

        super().__init__()
        if not alerts:
            raise ValueError("IncidentNotifier needs at least one alert route")
        if severity not in ("warn", "error"):
            raise ValueError(f"severity must be 'warn' or 'error', got {severity!r}")
        self.alerts = list(alerts)
        self.resolve = resolve
        self.name = name
        self.description = description
        self.severity = severity
        self.incident_policy = Policy.of(incident_policy)
        self.state_conn_id = state_conn_id

    def notify(self, context: Context) -> None:
        from airflow_opsflow.connections.state import state_store
        from airflow_opsflow.core.results import CheckResult
        from airflow_opsflow.flows.track_incidents import TaskRun, track

        ti = context["ti"]
        error = context.get("exception")
        status = "pass" if self.resolve else ("fail" if self.severity == "error" else "warn")
        result = CheckResult(
            name=self.name, kind="task", table=None, status=status, severity=self.severity,  # type: ignore[arg-type]
            observed=None if self.resolve else f"try {ti.try_number} failed",
            expected="the task succeeds",
            message="" if self.resolve else f"{type(error).__name__}: {error}" if error else "the task failed",
            description=self.description,
        )
        run = TaskRun.of(ti)
        _, report = track([result], run, self.alerts, self.incident_policy,
                          state_store(self.state_conn_id, f"dag {ti.dag_id!r}, task {ti.task_id!r}"))
        for delivery_id, problem in report.failed:
            self.log.warning("alert %s not delivered (kept pending): %s", delivery_id, problem)


send_incident_alert = IncidentNotifier
