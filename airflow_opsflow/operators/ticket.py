"""TicketOperator: tickets (Jira, HubSpot, Salesforce, Zendesk) for an upstream check task's results, or for an
explicit summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, TriggerRule
from airflow.sdk.exceptions import AirflowException

from airflow_opsflow.incidents.lifecycle import Policy as IncidentPolicy
from airflow_opsflow.incidents.tickets import TicketRoute
from airflow_opsflow.links import TICKETS_XCOM, TicketLink
from airflow_opsflow.operators.templating import NestedTemplates, nested_template_errors

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_opsflow.core.results import CheckResult

GROUPINGS = ("check", "task", "entity")


class TicketOperator(NestedTemplates, BaseOperator):
    """Open, update and resolve tickets from a DataCheckOperator's results (its XCom ``results``),
    with the same incident lifecycle as alerts: a ticket when an incident opens, comments when it
    escalates or reminds, resolution when it clears; never two tickets for one incident.

    Runs by default whatever the check task's outcome (``trigger_rule="all_done"``): a failed check
    task is exactly when a ticket is needed. The open tickets are pushed to XCom ``tickets`` as
    ``[{"key", "url", "system", "id"}]``: the task's "Ticket(s)" link opens them, and
    ``TicketSensor(upstream_task_id=..., ticket=<the same route>)`` waits until they are closed.

    :param ticket: the ticket route, in whichever system the team works: ``JiraTicket(project="OPS", ...)``,
        ``HubSpotTicket(pipeline=..., ...)``, ``SalesforceCase(...)``, ``ZendeskTicket(...)`` (any
        :class:`~airflow_opsflow.incidents.tickets.TicketRoute`). (templated: the route's own fields, e.g.
        ``JiraTicket(project="{{ params.project }}")``)
    :param check_task_id: the DataCheckOperator task whose results to read.
    :param group_by: ``check`` (one ticket per failing check, default), ``task`` (one ticket for all of
        the task's failing checks) or ``entity`` (one ticket per value of ``entity_column`` among a failing
        check's violating rows, e.g. per stuck delivery id).
    :param entity_column: the sample column naming the entity (``group_by="entity"``). Entities come from
        the check's samples, so raise its ``sample_limit`` to cover them all; an entity's ticket resolves
        when the check passes or when its samples held every violating row and the entity was not among
        them.
    :param summary: instead of check results, one ticket with this summary (templated); its incident is
        keyed by the rendered summary, so the same summary never opens a second ticket.
    :param description: the explicit ticket's description (templated).
    :param severity: the explicit ticket's severity (``error`` or ``warn``; maps to a priority).
    :param incident_policy: pending/resolve/reminder settings (see DataCheckOperator).
    :param state_conn_id: the state database (default ``[opsflow] state_conn_id``). (templated)
    """

    template_fields: Sequence[str] = ("summary", "description", "check_task_id", "ticket", "state_conn_id")
    operator_extra_links = (TicketLink(),)
    ui_color = "#deebff"

    def __init__(
        self,
        *,
        ticket: TicketRoute,
        check_task_id: str | None = None,
        group_by: str = "check",
        entity_column: str | None = None,
        summary: str | None = None,
        description: str | None = None,
        severity: str = "error",
        incident_policy: IncidentPolicy | dict[str, Any] | None = None,
        state_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.ALL_DONE)
        super().__init__(**kwargs)
        who = f"task {self.task_id!r}"
        if (check_task_id is None) == (summary is None):
            raise ValueError(f"{who}: give either check_task_id (tickets from check results) or summary")
        if group_by not in GROUPINGS:
            raise ValueError(f"{who}: group_by must be one of {GROUPINGS}, got {group_by!r}")
        if (group_by == "entity") != (entity_column is not None):
            raise ValueError(f"{who}: group_by='entity' and entity_column go together")
        if severity not in ("warn", "error"):
            raise ValueError(f"{who}: severity must be 'warn' or 'error'")
        if not isinstance(ticket, TicketRoute):
            raise ValueError(f"{who}: ticket must be a ticket route (JiraTicket, HubSpotTicket, SalesforceCase, "
                             f"ZendeskTicket...), not {type(ticket).__name__}")
        broken = nested_template_errors(ticket, "ticket")
        if broken:
            raise ValueError(f"{who}: {'; '.join(broken)}")
        self.ticket = ticket
        self.check_task_id = check_task_id
        self.group_by = group_by
        self.entity_column = entity_column
        self.summary = summary
        self.description = description
        self.severity = severity
        self.incident_policy = IncidentPolicy.of(incident_policy)
        self.state_conn_id = state_conn_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airflow_opsflow.connections.state import state_store
        from airflow_opsflow.flows.track_incidents import TaskRun, track

        results = self._results(context)
        entities: list[str | None] | None = None
        complete: frozenset[str] = frozenset()
        if self.group_by == "entity":
            results, entities, complete = self._by_entity(results)
        ti = context["ti"]
        run = TaskRun.of(ti)
        incidents, report = track(results, run, [self.ticket], self.incident_policy,
                                  state_store(self.state_conn_id, f"dag {self.dag_id!r}, task {self.task_id!r}"),
                                  entities=entities, resolve_unseen=complete)
        tickets = [t for i in incidents for t in i["tickets"] if i["status"] != "resolved"]
        ti.xcom_push(key=TICKETS_XCOM, value=tickets)
        for incident in incidents:
            if incident["transitions"]:
                self.log.info("%s: %s -> %s", incident["check"], ", ".join(incident["transitions"]),
                              ", ".join(t["key"] for t in incident["tickets"]) or "no ticket")
        if report.failed:  # retryable: the retry sends only what is still pending
            raise AirflowException(f"dag {self.dag_id!r}, task {self.task_id!r}: {len(report.failed)} ticket "
                                   "update(s) failed and stay pending: " + "; ".join(e for _, e in report.failed))
        return incidents

    def _results(self, context: Context) -> list[CheckResult]:
        from airflow_opsflow.core.results import CheckResult, worst

        if self.summary is not None:
            return [CheckResult(name=self.summary[:200], kind="ticket", table=None,
                                status="fail" if self.severity == "error" else "warn", severity=self.severity,
                                message=self.summary, description=self.description, expected="",
                                observed=None)]
        payload = context["ti"].xcom_pull(task_ids=self.check_task_id, key="results")
        if not payload:
            raise AirflowException(f"task {self.task_id!r}: no check results from task {self.check_task_id!r} "
                                   "(did it run? it must be a DataCheckOperator upstream of this task)")
        results = [CheckResult.from_dict(r) for r in payload["results"]]
        if self.group_by in ("check", "entity"):
            return results
        failing = [r for r in results if r.status in ("warn", "fail")]
        status = worst(failing) if failing else ("error" if any(r.status == "error" for r in results) else "pass")
        lines = [f"{r.name}: {r.message or r.expected} ({r.status})" for r in failing]
        return [CheckResult(name=str(self.check_task_id), kind="task", table=failing[0].table if failing else None,
                            status=status, severity="error" if status == "fail" else "warn",
                            observed=f"{len(failing)} of {len(results)} checks failing", expected="every check passes",
                            message="; ".join(lines), samples=[s for r in failing for s in r.samples][:20],
                            description="\n".join(lines) or None)]

    def _by_entity(self, results: list[CheckResult]) -> tuple[list[CheckResult], list[str | None], frozenset[str]]:
        """One result per (failing check, entity) from the samples; the checks whose entities are all known."""
        from dataclasses import replace

        column = str(self.entity_column)
        out: list[CheckResult] = []
        entities: list[str | None] = []
        complete = set()
        for r in results:
            if r.status == "pass":
                complete.add(r.name)
            if r.status not in ("warn", "fail") or not r.samples:
                continue
            key = next((c for c in r.samples[0] if c.lower() == column.lower()), None)
            if key is None:
                raise AirflowException(f"task {self.task_id!r}: check {r.name!r} has no column {column!r} in its "
                                       f"samples (columns: {', '.join(r.samples[0])}); add it to sample_columns")
            groups: dict[str, list[dict[str, Any]]] = {}
            for row in r.samples:
                groups.setdefault(str(row[key]), []).append(row)
            for value, rows in groups.items():
                out.append(replace(r, samples=rows, violating_count=len(rows), violating_share=None,
                                   message=f"{column} {value}: {r.expected}"))
                entities.append(value)
            if r.violating_count is not None and r.violating_count <= len(r.samples):
                complete.add(r.name)
        return out, entities, frozenset(complete)
