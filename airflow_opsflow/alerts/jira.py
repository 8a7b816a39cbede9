"""JiraTicket: one Jira ticket per incident, found again rather than duplicated, resolved with it.

The lifecycle is :class:`~airflow_opsflow.incidents.tickets.TicketRoute`'s; this module speaks Jira, like
Alertmanager's Jira notifier: every ticket carries a label derived from the incident's fingerprint, searched
for open or resolved within the reopen window (one ``labels in (...)`` search per run), tickets resolved as
"Won't Fix" left alone, transitions chosen by status category. The jira library's session would re-send a
create whose answer was lost (a duplicate ticket), so creates run without client retries, except after a
429: a rate-limited create was refused unprocessed, so its ``Retry-After`` is waited out and the create sent
again. Jira's search lags behind writes (on Cloud by design): known ticket ids are passed as
``reconcileIssues``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_opsflow.core.jinja import with_placeholders
from airflow_opsflow.core.retry_after import parse_retry_after
from airflow_opsflow.core.timestamps import parse_time
from airflow_opsflow.incidents import jira_render
from airflow_opsflow.incidents.tickets import Ticket, TicketBackend, TicketNotCreated, TicketRoute

if TYPE_CHECKING:
    from jira import JIRA
    from tenacity import RetryCallState

    from airflow_opsflow.hooks.jira import JiraTicketHook
    from airflow_opsflow.incidents.alert import Alert

FIELDS = "status,resolution,resolutiondate,labels,summary"
RATE_LIMIT_RETRIES = 5  # 429s on one create waited out before this try gives up (the task retries)
RETRY_AFTER_MAX = 86_400.0  # cuts only absurd values: anything over rate_limit_wait gives up at once anyway

__all__ = ["JiraBackend", "JiraTicket", "TicketNotCreated", "ticket_label"]


def ticket_label(fingerprint: str) -> str:
    """The label that finds an incident's ticket (Jira labels: no spaces, at most 255 characters)."""
    return f"opsflow-{fingerprint[:24]}"


class JiraTicket(TicketRoute):
    """Open, update and resolve a Jira ticket per incident.

    :param project: the project key (``OPS``).
    :param conn_id: an ``opsflow_jira`` connection (see JiraTicketHook).
    :param issue_type: issue type name (default ``Task``).
    :param priorities: severity -> priority name (default error: High, warn: Medium).
    :param labels: extra labels on every ticket.
    :param components: component names.
    :param assignee: account id (Cloud) or user name (Server/Data Center).
    :param fields: more fields for the create call (custom fields: ``{"customfield_10010": ...}``).
    :param done_transition: the transition that resolves a ticket (default ``Done``).
    :param reopen_transition: the transition that reopens one (default: the first leading out of done).
    :param reopen_window_days: a ticket resolved this many days ago is reopened rather than a new one
        created when its incident comes back (default 7; 0 always creates).
    :param unconfirmed_create_wait: seconds to keep searching for a ticket whose create was not
        confirmed before creating it again (search lags behind writes, on Jira Cloud by design).
    :param rate_limit_wait: at most this many seconds waited in all on ``Retry-After`` of rate-limited
        (429) creates before the try gives up (default 120); a 429 means nothing was created.

    Templated (Jinja, from params, Variables...): ``project``, ``conn_id``, ``issue_type``, ``priorities``,
    ``labels``, ``components``, ``assignee``, ``fields``, ``done_transition``, ``reopen_transition``.

    The lifecycle (find again, reopen, create, comment, resolve) is
    :class:`~airflow_opsflow.incidents.tickets.TicketRoute`'s; this class speaks Jira. Other parameters: see
    :class:`~airflow_opsflow.incidents.route.AlertRoute`.
    """

    kind = "jira"
    template_fields: tuple[str, ...] = ("project", "conn_id", "issue_type", "priorities", "labels", "components",
                                        "assignee", "fields", "done_transition", "reopen_transition")

    def __init__(self, *, project: str, conn_id: str = "opsflow_jira_default", issue_type: str = "Task",
                 priorities: dict[str, str] | None = None, labels: tuple[str, ...] = (),
                 components: tuple[str, ...] = (), assignee: str | None = None, fields: dict[str, Any] | None = None,
                 done_transition: str = "Done", reopen_transition: str | None = None, reopen_window_days: int = 7,
                 unconfirmed_create_wait: float = 30.0, rate_limit_wait: float = 120.0, **kwargs: Any) -> None:
        super().__init__(reopen_window_days=reopen_window_days, unconfirmed_create_wait=unconfirmed_create_wait,
                         **kwargs)
        _check_labels(labels)
        self.project = project
        self.conn_id = conn_id
        self.issue_type = issue_type
        self.priorities = priorities or {"error": "High", "warn": "Medium"}
        self.labels = tuple(labels)
        self.components = tuple(components)
        self.assignee = assignee
        self.fields = dict(fields or {})
        self.done_transition = done_transition
        self.reopen_transition = reopen_transition
        self.rate_limit_wait = rate_limit_wait

    def where(self) -> str:
        return f"{self.conn_id}/{self.project}"

    def backend(self) -> JiraBackend:
        from airflow_opsflow.hooks.jira import JiraTicketHook

        _check_labels(self.labels)  # again as rendered: a template may have produced a space
        # One client per dispatch (prepare opens it): building one costs a serverInfo request.
        return JiraBackend(self, JiraTicketHook(self.conn_id))


class JiraBackend(TicketBackend):
    """Jira for :class:`JiraTicket`: JQL by label, create without client retries, transitions by category."""

    def __init__(self, route: JiraTicket, hook: JiraTicketHook) -> None:
        self.route = route
        self.hook = hook

    @property
    def client(self) -> JIRA:
        return self.hook.client

    def search(self, fingerprints: list[str], known_ids: list[str], single: bool) -> dict[str, Ticket | None]:
        labels = {ticket_label(fp): fp for fp in fingerprints}
        names = sorted(labels)
        jql = f"labels = {_q(names[0])}" if single else f"labels in ({', '.join(_q(x) for x in names)})"
        found: dict[str, Ticket | None] = dict.fromkeys(fingerprints)
        for issue in self._query(jql, [int(i) for i in known_ids if i.isdigit()], limit=5 if single else False):
            for label in issue.fields.labels or []:  # open tickets first (ORDER BY): the first per label wins
                fp = labels.get(label)
                if fp is not None and found[fp] is None:
                    found[fp] = self._ticket(issue, fp)
        return found

    def read(self, ref: Mapping[str, Any], fingerprint: str) -> Ticket | None:
        from jira.exceptions import JIRAError

        try:
            issue = self.client.issue(str(ref.get("key") or ref["id"]), fields=FIELDS)
        except JIRAError as e:
            if e.status_code == 404:  # deleted, or moved where we cannot see it
                return None
            raise
        return self._ticket(issue, fingerprint)

    def create(self, fingerprint: str, alert: Alert) -> Ticket:
        r = self.route
        fields: dict[str, Any] = {
            "project": {"key": r.project},
            "issuetype": {"name": r.issue_type},
            "summary": jira_render.summary(alert),
            "description": jira_render.description(alert, r.sample_columns, r.mask_columns, r.sample_rows),
            "labels": [ticket_label(fingerprint), "opsflow", *r.labels],
            **r.fields,
        }
        priority = r.priorities.get(alert.severity)
        if priority:
            fields["priority"] = {"name": priority}
        if r.components:
            fields["components"] = [{"name": c} for c in r.components]
        client = self.client
        if r.assignee:
            fields["assignee"] = {"accountId": r.assignee} if client._is_cloud else {"name": r.assignee}
        # No client retries for the create: a retried POST whose first answer was lost is a duplicate.
        # A 429 is different: Jira refused it unprocessed, so it is sent again once Retry-After has passed.
        from jira.exceptions import JIRAError
        from tenacity import Retrying, retry_if_exception

        def stop(state: RetryCallState) -> bool:  # upcoming_sleep: the wait tenacity computed for this 429
            return (state.attempt_number > RATE_LIMIT_RETRIES
                    or state.idle_for + state.upcoming_sleep > r.rate_limit_wait)

        def give_up(state: RetryCallState) -> NoReturn:
            raise TicketNotCreated(f"{r.project}: Jira rate-limited the create {state.attempt_number} "
                                   "time(s) (429); nothing was created, the next try creates it") from _error(state)

        session = client._session
        retries = session.max_retries
        session.max_retries = 0
        try:
            issue = Retrying(retry=retry_if_exception(lambda e: isinstance(e, JIRAError) and e.status_code == 429),
                             wait=_rate_limit_wait, stop=stop, retry_error_callback=give_up, sleep=time.sleep,
                             )(client.create_issue, fields=fields, prefetch=False)
        finally:
            session.max_retries = retries
        return Ticket(id=str(issue.id), key=str(issue.key), url=self._url(str(issue.key)), closed=False)

    def comment(self, ticket: Ticket, alert: Alert) -> None:
        self.client.add_comment(ticket.key, self._comment(alert))

    def close(self, ticket: Ticket, alert: Alert) -> None:
        transition = self._transition_id(ticket.key, self.route.done_transition, to_done=True)
        self.client.transition_issue(ticket.key, transition, comment=self._comment(alert))

    def reopen(self, ticket: Ticket) -> None:
        self._transition_id(ticket.key, self.route.reopen_transition, to_done=False, apply=True)

    # -- Jira specifics ------------------------------------------------------------------------------------

    def _query(self, labels_jql: str, known: list[int], limit: int | bool) -> list[Any]:
        r = self.route
        window = f" OR resolutiondate >= -{r.reopen_window_days}d" if r.reopen_window_days > 0 else ""
        jql = (f"project = {_q(r.project)} AND {labels_jql} AND (statusCategory != Done{window}) "
               "ORDER BY statusCategory ASC, updated DESC")
        if self.hook.is_cloud:  # reconcileIssues: ids we know, visible even before Cloud's search catches up
            issues = self.client.enhanced_search_issues(jql, maxResults=limit, fields=FIELDS,
                                                        reconcileIssues=known[-50:], use_post=True)
        else:
            issues = self.client.search_issues(jql, maxResults=limit, fields=FIELDS, use_post=True)
        return [i for i in issues if not _wont_fix(i)]

    def _ticket(self, issue: Any, fingerprint: str) -> Ticket:
        key = str(issue.key)
        ours = key.rpartition("-")[0] == self.route.project and ticket_label(fingerprint) in (issue.fields.labels or [])
        return Ticket(id=str(issue.id), key=key, url=self._url(key), closed=_is_done(issue),
                      closed_at=parse_time(getattr(issue.fields, "resolutiondate", None)), ours=ours,
                      wont_fix=_wont_fix(issue), raw=issue)

    def _comment(self, alert: Alert) -> str:
        # The route's sample settings apply to tickets as to Slack and email: masked columns stay hidden.
        r = self.route
        return jira_render.comment(alert, r.sample_columns, r.mask_columns, r.sample_rows)

    def _url(self, key: str) -> str:
        return f"{self.client.server_url}/browse/{key}"

    def _transition_id(self, key: str, name: str | None, *, to_done: bool, apply: bool = False) -> str:
        options = self.client.transitions(key)
        chosen = None
        for t in options:
            category = ((t.get("to") or {}).get("statusCategory") or {}).get("key")
            if (name and t["name"].lower() == name.lower()) or (not name and (category == "done") == to_done):
                chosen = t
                break
        if chosen is None:
            names = ", ".join(t["name"] for t in options)
            raise ValueError(f"{key}: no transition {name or ('to done' if to_done else 'out of done')!r} "
                             f"(available: {names})")
        if apply:
            self.client.transition_issue(key, chosen["id"])
        return str(chosen["id"])


def _check_labels(labels: tuple[str, ...] | list[str]) -> None:
    # A Jinja expression may hold spaces ("{{ params.team }}"): judged by what it renders to.
    bad = [label for label in labels if " " in with_placeholders(str(label))]
    if bad:
        raise ValueError(f"Jira labels cannot contain spaces: {bad}")


def _error(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def _rate_limit_wait(state: RetryCallState) -> float:
    """Tenacity's wait after a rate-limited create: ``Retry-After``, or the back-off of this attempt."""
    return _retry_after(getattr(_error(state), "response", None), state.attempt_number - 1)


def _retry_after(response: Any, attempt: int) -> float:
    """Seconds a 429 asks to wait (``Retry-After``), or an exponential back-off when it does not say."""
    value = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    seconds = parse_retry_after(value, maximum=RETRY_AFTER_MAX)
    return float(2 ** attempt) if seconds is None else seconds


def _is_done(issue: Any) -> bool:
    status = getattr(issue.fields, "status", None)
    category = getattr(getattr(status, "statusCategory", None), "key", None)
    return category == "done"


def _wont_fix(issue: Any) -> bool:
    resolution = getattr(issue.fields, "resolution", None)
    return bool(resolution) and str(getattr(resolution, "name", "")).lower() in ("won't fix", "wont fix", "won't do")


def _q(value: str) -> str:
    """A JQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
