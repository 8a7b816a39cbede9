"""TicketSensor: wait until Jira tickets are resolved (or reach another status category)."""

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

    from airflow_opsflow.hooks.jira import JiraTicketHook
    from airflow_opsflow.triggers.ticket import TicketLookupError, TicketStatus


class TicketSensor(BaseSensorOperator):
    """Wait until every given Jira ticket is in a status category: ``done`` by default (resolved, whatever
    the workflow calls its final status), or ``new``, ``indeterminate`` (in progress) or ``not done``.

    Give the tickets, or the task that pushed them: DataCheckOperator and TicketOperator push
    ``[{"key", "url"}]`` to XCom key ``tickets``. No tickets: the sensor succeeds at once. A ticket Jira
    does not know fails the task (without retries). Returns (to XCom) ``{"tickets": {key: status name}}``,
    plus ``polls`` when it waited deferred.

    Works in ``poke`` and ``reschedule`` mode through JiraTicketHook (one ``key in (...)`` search per poke
    for all tickets), and deferred (``deferrable=True``): the wait then runs in the triggerer, on an
    asynchronous HTTP client, so the triggerer's event loop never blocks on Jira.

    :param tickets: issue keys: a list, a comma-separated string, or DataCheckOperator's ``[{"key", "url"}]``
        (templated; ``"{{ ti.xcom_pull(task_ids='check', key='tickets') }}"`` works too).
    :param upstream_task_id: instead of ``tickets``, read this task's XCom ``tickets`` when the sensor runs.
    :param jira_conn_id: an ``opsflow_jira`` connection (see JiraTicketHook). (templated)
    :param status_category: ``done`` (default), ``new``, ``indeterminate`` or ``not done``; Jira's category
        names ``To Do`` and ``In Progress`` are accepted too.
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
        jira_conn_id: str = "opsflow_jira_default",
        status_category: str = "done",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        from airflow_opsflow.triggers.ticket import status_category as parse_category
        from airflow_opsflow.triggers.ticket import ticket_keys

        super().__init__(**kwargs)
        who = f"task {self.task_id!r}"
        if (tickets is None) == (upstream_task_id is None):
            raise ValueError(f"{who}: give either tickets or upstream_task_id")
        try:
            self.status_category = parse_category(status_category)
            if _literal(tickets):  # known at parse time: validate now
                ticket_keys(tickets)
        except ValueError as e:
            raise ValueError(f"{who}: {e}") from None
        self.tickets = tickets
        self.upstream_task_id = upstream_task_id
        self.jira_conn_id = jira_conn_id
        self.deferrable = deferrable
        self._hook: JiraTicketHook | None = None

    def _keys(self, context: Context) -> list[str]:
        from airflow_opsflow.triggers.ticket import ticket_keys

        value = self.tickets
        source = "tickets"
        if self.upstream_task_id is not None:
            value = context["ti"].xcom_pull(task_ids=self.upstream_task_id, key=TICKETS_XCOM)
            source = f"XCom {TICKETS_XCOM!r} of task {self.upstream_task_id!r}"
        try:
            return ticket_keys(value)
        except ValueError as e:
            raise AirflowFailException(f"task {self.task_id!r}: {source}: {e}") from None

    def poke(self, context: Context) -> PokeReturnValue:
        return self._check(self._keys(context))

    def _check(self, keys: list[str]) -> PokeReturnValue:
        from airflow_opsflow.triggers.ticket import describe, pending

        if not keys:
            self.log.info("no Jira tickets to wait for: done")
            return PokeReturnValue(True, {"tickets": {}})
        statuses = self._statuses(keys)
        waiting = pending(statuses, self.status_category)
        if waiting:
            self.log.info("waiting for %s to be %s", describe(statuses, waiting), self.status_category)
            return PokeReturnValue(False)
        self.log.info("all %d ticket(s) are %s: %s", len(keys), self.status_category, describe(statuses, keys))
        return PokeReturnValue(True, {"tickets": {k: s.name for k, s in statuses.items()}})

    def _statuses(self, keys: list[str]) -> dict[str, TicketStatus]:
        import requests
        from jira.exceptions import JIRAError

        from airflow_opsflow.hooks.jira import JiraTicketHook
        from airflow_opsflow.triggers.ticket import TicketLookupError, jira_error

        if self._hook is None:  # one client (and serverInfo request) for all pokes of this try
            self._hook = JiraTicketHook(self.jira_conn_id)
        try:
            return self._read(self._hook, keys)
        except JIRAError as e:
            raise self._failure(jira_error(e.status_code or 0, [e.text or ""], self.jira_conn_id)) from None
        except requests.RequestException as e:
            raise self._failure(TicketLookupError(f"cannot reach Jira (connection {self.jira_conn_id!r}): "
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
        keys = self._keys(context)
        done = self._check(keys)
        if done:  # no need to defer when the tickets are already there
            return done.xcom_value
        from airflow_opsflow.triggers.ticket import TicketStatusTrigger

        deadline = time.time() + self.timeout if self.timeout is not None else None
        self.defer(
            trigger=TicketStatusTrigger(self.jira_conn_id, keys, self.status_category, float(self.poke_interval),
                                        deadline),
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
    return items is not None and all(isinstance(i, (str, dict)) for i in items) and "{{" not in str(tickets)
