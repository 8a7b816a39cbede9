"""TicketSensor: wait until tickets are closed (Jira: resolved, or in another status category), in Jira,
HubSpot, Salesforce, Zendesk or any other ticket route's system."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)

from airflow_opsflow.links import TICKETS_XCOM

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger

    from airflow_opsflow.hooks.jira import JiraTicketHook
    from airflow_opsflow.incidents.tickets import TicketBackend, TicketRoute
    from airflow_opsflow.triggers.ticket import TicketLookupError, TicketRef, TicketStatus

DEFAULT_JIRA_CONN = "opsflow_jira_default"


class TicketSensor(BaseSensorOperator):
    """Wait until every given ticket is closed, in whichever system holds it.

    Jira (``jira_conn_id``, or ``ticket=JiraTicket(...)``): until every ticket is in a status category,
    ``done`` by default (resolved, whatever the workflow calls its final status), or ``new``,
    ``indeterminate`` (in progress) or ``not done``; one ``key in (...)`` search per poke for all tickets.

    Any other ticket route (``ticket=HubSpotTicket(...)``, ``SalesforceCase(...)``, ``ZendeskTicket(...)``):
    until every ticket is closed (``done``: a closed HubSpot stage, a closed Case status, a solved or closed
    Zendesk ticket) or open (``not done``); the route's backend reads the tickets by id, all in one batched
    request per poke (HubSpot ``batch/read``, a Salesforce ``Id IN`` query, Zendesk ``show_many``), consistent
    unlike the systems' searches.

    Give the tickets, or the task that pushed them: DataCheckOperator and TicketOperator push
    ``[{"key", "url", "system", "id"}]`` to XCom key ``tickets``. Tickets of another system than the
    sensor's are left out (a check may file tickets in two systems); when all of them are another
    system's, the task fails (the sensor was given the wrong route). No tickets: the sensor succeeds at
    once. A ticket the system does not know fails the task (without retries). Returns (to XCom)
    ``{"tickets": {key: status}}`` (Jira's status name; ``closed`` or ``open`` elsewhere), plus ``polls``
    when it waited deferred.

    Works in ``poke`` and ``reschedule`` mode, and deferred (``deferrable=True``): the wait then runs in
    the triggerer, for Jira on an asynchronous HTTP client, for other systems by the route's backend in a
    worker thread, so the triggerer's event loop never blocks.

    :param tickets: the tickets: Jira issue keys, or other systems' ticket ids (Zendesk's ``123``, a
        Case's Id, a HubSpot ticket id); a list, a comma-separated string, or the ``[{"key", "url",
        "system", "id"}]`` a task pushed (templated; ``"{{ ti.xcom_pull(task_ids='check', key='tickets') }}"``
        works too).
    :param upstream_task_id: instead of ``tickets``, read this task's XCom ``tickets`` when the sensor runs.
    :param ticket: the ticket route whose system holds the tickets (its connection and settings are used
        to read them): ``ZendeskTicket(conn_id=...)``, ``HubSpotTicket(...)``, ``SalesforceCase(...)``, or
        ``JiraTicket(...)`` (the same as its ``jira_conn_id``). Give the route that opened the tickets. In
        deferrable mode its class must be importable by the triggerer (opsflow's own are).
    :param jira_conn_id: without ``ticket``: an ``opsflow_jira`` connection (see JiraTicketHook; default
        ``opsflow_jira_default``). (templated)
    :param status_category: ``done`` (default) or ``not done``; for Jira also ``new`` and ``indeterminate``
        (Jira's category names ``To Do`` and ``In Progress`` are accepted too).
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).

    ``mode``, ``poke_interval``, ``timeout``, ``soft_fail`` and the other sensor parameters work as on any
    Airflow sensor.
    """

    template_fields: Sequence[str] = ("tickets", "jira_conn_id")
    ui_color = "#deebff"

    def __init__(
        self,
        *,
        tickets: Any = None,
        upstream_task_id: str | None = None,
        ticket: TicketRoute | None = None,
        jira_conn_id: str | None = None,
        status_category: str = "done",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        from airflow_opsflow.alerts.jira import JiraTicket
        from airflow_opsflow.incidents.tickets import TicketRoute
        from airflow_opsflow.triggers.ticket import OPEN_OR_CLOSED, parse_tickets, system_name
        from airflow_opsflow.triggers.ticket import status_category as parse_category

        super().__init__(**kwargs)
        who = f"task {self.task_id!r}"
        if (tickets is None) == (upstream_task_id is None):
            raise ValueError(f"{who}: give either tickets or upstream_task_id")
        if ticket is not None and not isinstance(ticket, TicketRoute):
            raise ValueError(f"{who}: ticket must be a ticket route (JiraTicket, HubSpotTicket, SalesforceCase, "
                             f"ZendeskTicket...), not {type(ticket).__name__}")
        if ticket is not None and jira_conn_id is not None:
            raise ValueError(f"{who}: give either ticket or jira_conn_id (a JiraTicket route has its conn_id)")
        # Jira keeps its own path (status categories, one search for all tickets); other routes read by id.
        self.route = None if ticket is None or isinstance(ticket, JiraTicket) else ticket
        self.system = "jira" if self.route is None else self.route.kind
        try:
            self.status_category = parse_category(status_category)
            if self.route is not None and self.status_category not in OPEN_OR_CLOSED:
                raise ValueError(f"status_category {status_category!r} needs Jira's status categories; "
                                 f"{system_name(self.system)} tickets are open or closed: use 'done' or 'not done'")
            if _literal(tickets):  # known at parse time: validate now
                parse_tickets(tickets, self.system)
        except ValueError as e:
            raise ValueError(f"{who}: {e}") from None
        self.tickets = tickets
        self.upstream_task_id = upstream_task_id
        self.ticket = ticket
        self.jira_conn_id = (ticket.conn_id if isinstance(ticket, JiraTicket)
                             else None if self.route is not None else jira_conn_id or DEFAULT_JIRA_CONN)
        self.deferrable = deferrable
        self._hook: JiraTicketHook | None = None
        self._backend: TicketBackend | None = None

    def _refs(self, context: Context) -> list[TicketRef]:
        from airflow_opsflow.triggers.ticket import parse_tickets, system_name

        value = self.tickets
        source = "tickets"
        if self.upstream_task_id is not None:
            value = context["ti"].xcom_pull(task_ids=self.upstream_task_id, key=TICKETS_XCOM)
            source = f"XCom {TICKETS_XCOM!r} of task {self.upstream_task_id!r}"
        try:
            refs, others = parse_tickets(value, self.system)
        except ValueError as e:
            raise AirflowFailException(f"task {self.task_id!r}: {source}: {e}") from None
        if others:
            self.log.info("%s: not waiting for %s: not %s tickets", source, ", ".join(others),
                          system_name(self.system))
        return refs

    def poke(self, context: Context) -> PokeReturnValue:
        return self._check(self._refs(context))

    def _check(self, refs: list[TicketRef]) -> PokeReturnValue:
        from airflow_opsflow.triggers.ticket import describe, pending, system_name

        if not refs:
            self.log.info("no %s tickets to wait for: done", system_name(self.system))
            return PokeReturnValue(True, {"tickets": {}})
        statuses = self._statuses([r.key for r in refs]) if self.route is None else self._read_route(refs)
        waiting = pending(statuses, self.status_category)
        if waiting:
            self.log.info("waiting for %s to be %s", describe(statuses, waiting), self.status_category)
            return PokeReturnValue(False)
        self.log.info("all %d ticket(s) are %s: %s", len(statuses), self.status_category,
                      describe(statuses, statuses))
        return PokeReturnValue(True, {"tickets": {k: s.name for k, s in statuses.items()}})

    def _read_route(self, refs: list[TicketRef]) -> dict[str, TicketStatus]:
        """Every ticket's state through the route's backend, opened once for all pokes of this try."""
        from airflow_opsflow.triggers.ticket import TicketLookupError, read_statuses, system_name

        assert self.route is not None
        try:
            if self._backend is None:
                self._backend = self.route.backend()
            return read_statuses(self._backend, refs, self.system)
        except TicketLookupError as e:
            raise self._failure(e) from None
        except Exception as e:  # the system's own errors, named; the task's retries try again
            raise AirflowException(f"task {self.task_id!r}: cannot read the {system_name(self.system)} tickets "
                                   f"({self.route.name}): {type(e).__name__}: {e}") from e

    def _statuses(self, keys: list[str]) -> dict[str, TicketStatus]:
        import requests
        from jira.exceptions import JIRAError

        from airflow_opsflow.hooks.jira import JiraTicketHook
        from airflow_opsflow.triggers.ticket import TicketLookupError, jira_error

        conn_id = str(self.jira_conn_id)
        if self._hook is None:  # one client (and serverInfo request) for all pokes of this try
            self._hook = JiraTicketHook(conn_id)
        try:
            return self._read(self._hook, keys)
        except JIRAError as e:
            raise self._failure(jira_error(e.status_code or 0, [e.text or ""], conn_id)) from None
        except requests.RequestException as e:
            raise self._failure(TicketLookupError(f"cannot reach Jira (connection {conn_id!r}): "
                                                  f"{type(e).__name__}: {e}")) from None
        except TicketLookupError as e:
            raise self._failure(e) from None

    @staticmethod
    def _read(hook: JiraTicketHook, keys: list[str]) -> dict[str, TicketStatus]:
        """Every ticket's status: one search for all, then a direct read of any ticket it missed (Cloud's
        search lags behind writes; a moved ticket comes back under its new key)."""
        from jira.exceptions import JIRAError

        from airflow_opsflow.triggers.ticket import jira_error, key_jql, status_of, unknown_tickets

        client = hook.client
        cloud = hook.is_cloud
        unknown: list[str] = []
        searched = list(keys)
        while True:
            try:
                if not searched:
                    found = {}
                elif cloud:
                    found = dict(status_of(i.raw) for i in client.enhanced_search_issues(
                        key_jql(searched), maxResults=0, fields="status", use_post=True))
                else:
                    found = dict(status_of(i.raw) for i in client.search_issues(
                        key_jql(searched), maxResults=False, fields="status", use_post=True))
                break
            except JIRAError as e:
                named = [k for k in jira_error(e.status_code or 0, [e.text or ""], "").unknown if k in searched]
                if not named:
                    raise
                # Strict JQL refuses unknown keys, maybe one at a time: search again without them, to name all.
                unknown += named
                searched = [k for k in searched if k not in named]
        for key in (k for k in searched if k not in found):
            try:
                found[key] = status_of(client.issue(key, fields="status").raw)[1]
            except JIRAError as e:
                if e.status_code != 404:
                    raise
                unknown.append(key)
        if unknown:
            raise unknown_tickets([k for k in keys if k in unknown])
        return {k: found[k] for k in keys}

    def _failure(self, error: TicketLookupError) -> AirflowException:
        # An unknown ticket stays unknown: no retries for it.
        kind = AirflowFailException if error.unknown else AirflowException
        return kind(f"task {self.task_id!r}: {error}")

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        refs = self._refs(context)
        done = self._check(refs)
        if done:  # no need to defer when the tickets are already there
            return done.xcom_value
        from airflow_opsflow.triggers.ticket import TicketRouteTrigger, TicketStatusTrigger, route_spec

        deadline = time.time() + self.timeout if self.timeout is not None else None
        trigger: BaseTrigger
        if self.route is None:
            trigger = TicketStatusTrigger(str(self.jira_conn_id), [r.key for r in refs], self.status_category,
                                          float(self.poke_interval), deadline)
        else:
            path, kwargs = route_spec(self.route)
            trigger = TicketRouteTrigger(path, kwargs, [r._asdict() for r in refs], self.status_category,
                                         float(self.poke_interval), deadline)
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout is not None else None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired; returns (to XCom) the statuses and how many polls it took."""
        from airflow_opsflow.triggers.ticket import TicketLookupError

        tickets: dict[str, str] = event.get("tickets") or {}
        if event.get("status") == "timeout":
            waiting = ", ".join(f"{k} ({tickets[k]})" if k in tickets else k for k in event.get("pending") or [])
            message = (f"task {self.task_id!r}: {waiting} did not become {self.status_category} within "
                       f"{self.timeout:g} s ({event.get('polls')} polls)")
            raise AirflowSkipException(message) if self.soft_fail else AirflowSensorTimeout(message)
        if event.get("status") != "success":
            raise self._failure(TicketLookupError(str(event.get("message")), event.get("unknown") or ()))
        self.log.info("all %d ticket(s) are %s after %s poll(s) in the triggerer: %s", len(tickets),
                      self.status_category, event.get("polls"), ", ".join(f"{k} ({s})" for k, s in tickets.items()))
        return {"tickets": tickets, "polls": event.get("polls")}


def _literal(tickets: Any) -> bool:
    """Tickets given as plain keys or dicts: no template, no XComArg."""
    items = [tickets] if isinstance(tickets, str) else tickets if isinstance(tickets, (list, tuple)) else None
    return items is not None and all(isinstance(i, (str, int, dict)) for i in items) and "{{" not in str(tickets)
