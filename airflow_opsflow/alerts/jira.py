"""JiraTicket: one Jira ticket per incident, found again rather than duplicated, resolved with it.

Read top to bottom like Alertmanager's Jira notifier: every ticket carries a label derived from the
incident's fingerprint; a new incident searches for it (open, or resolved within the reopen window)
and comments/reopens, or creates; follow-ups comment; resolution comments and transitions to done,
leaving tickets resolved as "Won't Fix" alone. The jira library's session would re-send a create whose
answer was lost (a duplicate ticket), so creates run without client retries and a failed or unanswered
create is followed by a search before any new create, except after a 429: a rate-limited create was
refused unprocessed, so its ``Retry-After`` is waited out and the create sent again. Jira's search lags
behind writes (on Cloud by design): an incident that comes back reads its previous ticket by key
(consistent everywhere) before searching, known ticket ids are passed as ``reconcileIssues``, and after an
unconfirmed create the search is repeated for a while before creating again.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_opsflow.core.retry_after import parse_retry_after
from airflow_opsflow.incidents import jira_render
from airflow_opsflow.incidents.route import AlertRoute

if TYPE_CHECKING:
    from jira import JIRA
    from tenacity import RetryCallState

    from airflow_opsflow.hooks.jira import JiraTicketHook
    from airflow_opsflow.incidents.alert import Alert
    from airflow_opsflow.incidents.repo import Delivery

FIELDS = "status,resolution,resolutiondate,labels,summary"
RATE_LIMIT_RETRIES = 5  # 429s on one create waited out before this try gives up (the task retries)
RETRY_AFTER_MAX = 86_400.0  # cuts only absurd values: anything over rate_limit_wait gives up at once anyway


class TicketNotCreated(Exception):
    """Jira refused the create unprocessed (rate limited): no ticket exists that a search could find."""


def ticket_label(fingerprint: str) -> str:
    """The label that finds an incident's ticket (Jira labels: no spaces, at most 255 characters)."""
    return f"opsflow-{fingerprint[:24]}"


class JiraTicket(AlertRoute):
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

    Other parameters: see :class:`~airflow_opsflow.incidents.route.AlertRoute`.
    """

    kind = "jira"

    def __init__(self, *, project: str, conn_id: str = "opsflow_jira_default", issue_type: str = "Task",
                 priorities: dict[str, str] | None = None, labels: tuple[str, ...] = (),
                 components: tuple[str, ...] = (), assignee: str | None = None, fields: dict[str, Any] | None = None,
                 done_transition: str = "Done", reopen_transition: str | None = None, reopen_window_days: int = 7,
                 unconfirmed_create_wait: float = 30.0, rate_limit_wait: float = 120.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if any(" " in label for label in labels):
            raise ValueError(f"Jira labels cannot contain spaces: {labels}")
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
        self.reopen_window_days = reopen_window_days
        self.unconfirmed_create_wait = unconfirmed_create_wait
        self.rate_limit_wait = rate_limit_wait

    def where(self) -> str:
        return f"{self.conn_id}/{self.project}"

    def _comment(self, alert: Alert) -> str:
        # The route's sample settings apply to tickets as to Slack and email: masked columns stay hidden.
        return jira_render.comment(alert, self.sample_columns, self.mask_columns, self.sample_rows)

    def prepare(self, deliveries: list[Delivery]) -> None:
        """One search for the tickets of every new incident in this run (``labels in (...)``), instead of
        one per incident; ``_search`` answers from it."""
        from airflow_opsflow.hooks.jira import JiraTicketHook

        labels = sorted({ticket_label(d.fingerprint) for d in deliveries if d.transition == "new"})
        self._prefetched: dict[str, Any] = {}
        # One client per dispatch: building one costs a serverInfo request.
        self._hook: JiraTicketHook | None = JiraTicketHook(self.conn_id) if deliveries else None
        if not labels or self._hook is None:
            return
        hook = self._hook
        found = self._query(hook.client, hook.is_cloud, f"labels in ({', '.join(_q(x) for x in labels)})", [],
                            limit=False)
        self._prefetched = {label: None for label in labels}
        for issue in found:  # open tickets first (ORDER BY), so the first per label is the one to use
            for label in issue.fields.labels:
                if label in self._prefetched and self._prefetched[label] is None:
                    self._prefetched[label] = issue

    def deliver(self, alert: Alert, delivery: Delivery, refs: dict[str, Any]) -> dict[str, Any]:
        from airflow_opsflow.hooks.jira import JiraTicketHook

        hook = getattr(self, "_hook", None) or JiraTicketHook(self.conn_id)
        client = hook.client
        label = ticket_label(delivery.fingerprint)
        if alert.kind == "new":
            return self._open(client, hook.is_cloud, alert, delivery, refs, label)
        key = refs.get("key") or self._find_key(client, hook.is_cloud, label, refs)
        if key is None:  # the ticket was never created (e.g. only resolved reached us): nothing to update
            return refs
        if alert.kind == "resolved":
            self._resolve(client, key, alert)
        else:
            client.add_comment(key, self._comment(alert))
        return {**refs, "key": key}

    # -- new incident: find, reopen or create ------------------------------------------------------------

    def _open(self, client: JIRA, cloud: bool, alert: Alert, delivery: Delivery, refs: dict[str, Any],
              label: str) -> dict[str, Any]:
        if refs.get("key"):  # created by an earlier try of this delivery and confirmed
            return refs
        # The previous occurrence's ticket, read by key: a search may not see it yet, or see it still open.
        found = previous = self._previous(client, label, refs)
        if previous is None or _is_done(previous):  # an open ticket with the label wins over a reopen
            searched = self._search(client, cloud, label, refs, fresh=bool(delivery.attempts))
            if previous is None or (searched is not None and searched.key != previous.key
                                    and not _is_done(searched)):
                found = searched
        # An earlier try's create may have happened unanswered, unless Jira refused it (429).
        unconfirmed = delivery.attempts and not (delivery.last_error or "").startswith(TicketNotCreated.__name__)
        if found is None and unconfirmed:
            found = self._search_until_visible(client, cloud, label, refs)
        if found is not None:
            if _is_done(found):
                self._reopen(client, found.key)
            client.add_comment(found.key, self._comment(alert))
            return self._refs(client, found, refs)
        issue = self._create(client, alert, label)
        return self._refs(client, issue, refs)

    def _previous(self, client: JIRA, label: str, refs: dict[str, Any]) -> Any:
        """The ticket of the incident's previous occurrence if it is still the one to use: same project and
        label, not Won't Fix, open or resolved within the reopen window; None otherwise."""
        from jira.exceptions import JIRAError

        key = str((refs.get("previous") or {}).get("key") or "")
        if not key:
            return None
        try:
            issue = client.issue(key, fields=FIELDS)
        except JIRAError as e:
            if e.status_code == 404:  # deleted, or moved where we cannot see it
                return None
            raise
        if (str(issue.key).rpartition("-")[0] != self.project or label not in (issue.fields.labels or [])
                or _wont_fix(issue)):
            return None
        if _is_done(issue):
            resolved = _jira_time(getattr(issue.fields, "resolutiondate", None))
            window = timedelta(days=self.reopen_window_days)
            if self.reopen_window_days <= 0 or resolved is None or datetime.now(UTC) - resolved > window:
                return None
        return issue

    def _search(self, client: JIRA, cloud: bool, label: str, refs: dict[str, Any],
                fresh: bool = False) -> Any:
        """The incident's ticket: open, or resolved (not as Won't Fix) within the reopen window."""
        prefetched = getattr(self, "_prefetched", {})
        if not fresh and label in prefetched and not _known_ids(refs):
            return prefetched[label]
        found = self._query(client, cloud, f"labels = {_q(label)}", [int(i) for i in _known_ids(refs)], limit=5)
        return found[0] if found else None

    def _query(self, client: JIRA, cloud: bool, labels_jql: str, known: list[int], limit: int | bool) -> list[Any]:
        window = f" OR resolutiondate >= -{self.reopen_window_days}d" if self.reopen_window_days > 0 else ""
        jql = (f"project = {_q(self.project)} AND {labels_jql} AND (statusCategory != Done{window}) "
               "ORDER BY statusCategory ASC, updated DESC")
        if cloud:  # reconcileIssues: ids we know, visible even before Cloud's search catches up
            issues = client.enhanced_search_issues(jql, maxResults=limit, fields=FIELDS, reconcileIssues=known[-50:],
                                                   use_post=True)
        else:
            issues = client.search_issues(jql, maxResults=limit, fields=FIELDS, use_post=True)
        return [i for i in issues if not _wont_fix(i)]

    def _search_until_visible(self, client: JIRA, cloud: bool, label: str, refs: dict[str, Any]) -> Any:
        """After a create whose answer was lost: the ticket may exist but not be searchable yet."""
        # Cloud's search lags by design; a busy Data Center re-indexes late too: wait in both.
        deadline = time.monotonic() + self.unconfirmed_create_wait
        delay = 1.0
        while time.monotonic() < deadline:
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            found = self._search(client, cloud, label, refs, fresh=True)
            if found is not None:
                return found
            delay *= 2
        return None

    def _find_key(self, client: JIRA, cloud: bool, label: str, refs: dict[str, Any]) -> str | None:
        found = self._search(client, cloud, label, refs)
        return None if found is None else str(found.key)

    def _create(self, client: JIRA, alert: Alert, label: str) -> Any:
        fields: dict[str, Any] = {
            "project": {"key": self.project},
            "issuetype": {"name": self.issue_type},
            "summary": jira_render.summary(alert),
            "description": jira_render.description(alert, self.sample_columns, self.mask_columns, self.sample_rows),
            "labels": [label, "opsflow", *self.labels],
            **self.fields,
        }
        priority = self.priorities.get(alert.severity)
        if priority:
            fields["priority"] = {"name": priority}
        if self.components:
            fields["components"] = [{"name": c} for c in self.components]
        if self.assignee:
            fields["assignee"] = {"accountId": self.assignee} if client._is_cloud else {"name": self.assignee}
        # No client retries for the create: a retried POST whose first answer was lost is a duplicate.
        # A 429 is different: Jira refused it unprocessed, so it is sent again once Retry-After has passed.
        from jira.exceptions import JIRAError
        from tenacity import Retrying, retry_if_exception

        def stop(state: RetryCallState) -> bool:  # upcoming_sleep: the wait tenacity computed for this 429
            return (state.attempt_number > RATE_LIMIT_RETRIES
                    or state.idle_for + state.upcoming_sleep > self.rate_limit_wait)

        def give_up(state: RetryCallState) -> NoReturn:
            raise TicketNotCreated(f"{self.project}: Jira rate-limited the create {state.attempt_number} "
                                   "time(s) (429); nothing was created, the next try creates it") from _error(state)

        session = client._session
        retries = session.max_retries
        session.max_retries = 0
        try:
            return Retrying(retry=retry_if_exception(lambda e: isinstance(e, JIRAError) and e.status_code == 429),
                            wait=_rate_limit_wait, stop=stop, retry_error_callback=give_up, sleep=time.sleep,
                            )(client.create_issue, fields=fields, prefetch=False)
        finally:
            session.max_retries = retries

    def _refs(self, client: JIRA, issue: Any, refs: dict[str, Any]) -> dict[str, Any]:
        ids = list(dict.fromkeys([*_known_ids(refs), str(issue.id)]))[-20:]
        return {"key": str(issue.key), "id": str(issue.id), "url": f"{client.server_url}/browse/{issue.key}",
                "known_ids": ids}

    # -- transitions -----------------------------------------------------------------------------------------

    def _resolve(self, client: JIRA, key: str, alert: Alert) -> None:
        issue = client.issue(key, fields=FIELDS)
        if _is_done(issue):  # already resolved by someone (or as Won't Fix): leave it
            return
        transition = self._transition_id(client, key, self.done_transition, to_done=True)
        client.transition_issue(key, transition, comment=self._comment(alert))

    def _reopen(self, client: JIRA, key: str) -> None:
        self._transition_id(client, key, self.reopen_transition, to_done=False, apply=True)

    def _transition_id(self, client: JIRA, key: str, name: str | None, *, to_done: bool,
                       apply: bool = False) -> str:
        options = client.transitions(key)
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
            client.transition_issue(key, chosen["id"])
        return str(chosen["id"])


def _known_ids(refs: dict[str, Any]) -> list[str]:
    previous = refs.get("previous") or {}
    return [str(i) for i in [*previous.get("known_ids", []), *refs.get("known_ids", [])]]


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


def _jira_time(value: Any) -> datetime | None:
    """A Jira timestamp (``2024-05-01T12:00:00.000+0000``) as an aware datetime."""
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


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
