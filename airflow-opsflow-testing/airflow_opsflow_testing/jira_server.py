"""FakeJira: a local Jira REST v2 server (Cloud or Server/Data Center flavour) for tests.

The real ``jira`` library works against it unchanged (``JIRA(server=fake.url, basic_auth=(email, api_token))``
in Cloud mode, ``token_auth=pat`` in Server mode), and so does anything built on it::

    with FakeJira() as jira_site:                       # mode="cloud"; "server" for Server/DC
        client = jira_site.client()                     # a jira.JIRA with the right auth, timeout 10 s
        issue = client.create_issue(fields={"project": {"key": "OPS"}, "issuetype": {"name": "Task"},
                                            "summary": "payments: 3 checks failed", "labels": ["opsflow"]})
        client.transition_issue(issue, "Done", fields={"resolution": {"name": "Won't Fix"}})
        assert jira_site.issue(issue.key).resolution == "Won't Fix"

Served: serverInfo, myself, field, priority, resolution, status, issuetype, project(s); issue create/get/edit,
comments and transitions; search (``/search`` on Server, ``/search/jql`` with ``nextPageToken`` and
``reconcileIssues`` on Cloud, where ``/search`` answers 410 as on real Cloud) with a JQL subset
(see ``jira_jql``). Knobs: :meth:`FakeJira.search_delay` (Cloud's eventually consistent search),
:meth:`FakeJira.expire_token`, :meth:`FakeJira.set_labels_on_create_screen`; faults: :meth:`FakeJira.fail_next`
(429 + ``Retry-After``, 503, ...) and :meth:`FakeJira.drop_response_next` (processed, then the connection
closes unanswered: the jira library's session re-sends the POST and creates a duplicate).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from airflow_opsflow_testing.jira_endpoints import Endpoints, Reply
from airflow_opsflow_testing.jira_schema import (
    CLOUD,
    DEFAULT_PROJECTS,
    MODES,
    STATUSES,
    JiraApiError,
    JiraProject,
    JiraUser,
    bad_request,
    not_found,
)
from airflow_opsflow_testing.jira_tracker import JiraIssue, JiraTracker, TransitionRecord
from airflow_opsflow_testing.local_http import LocalHandler, LocalHTTPService, _Server

if TYPE_CHECKING:
    from jira import JIRA

__all__ = ["FakeJira", "JiraIssue", "JiraProject", "RecordedRequest", "TransitionRecord"]

DEFAULT_EMAIL = "opsflow-bot@example.com"
DEFAULT_API_TOKEN = "opsflow-fake-api-token"
DEFAULT_PAT = "opsflow-fake-personal-access-token"
NOT_AUTHENTICATED = "You are not authenticated. Authentication required to perform this operation."
AUTH_FAILED = "Client must be authenticated to access this resource."
WRITE_METHODS = ("POST", "PUT", "DELETE")



@dataclass(frozen=True)
class RecordedRequest:
    """One request as it arrived (no credentials) and how it was answered."""

    name: str  # the operation: "create", "search", "transition", ... ("unknown" for unrouted paths)
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any  # parsed JSON, or None
    status: int | None  # None when the answer was dropped
    error: str | None  # Jira's error text, joined as the jira library does
    headers: dict[str, str] = field(default_factory=dict)  # without Authorization/Cookie

    @property
    def is_write(self) -> bool:
        """A request that may change Jira (searching by POST does not)."""
        return self.method in WRITE_METHODS and self.name != "search"


@dataclass
class _Fault:
    target: str  # an operation name, or a path prefix starting with "/"
    drop: bool
    remaining: int
    status: int = 429
    retry_after: int | None = 1
    message: str | None = None


class _Handler(LocalHandler):
    def do_GET(self) -> None:
        raw = self._read_body()
        assert isinstance(self.server, _Server)
        reply = self.server.fake._dispatch(self.command, self.path, self.headers, raw)
        if reply is None:
            self.close_connection = True  # processed, never answered: the client sees the connection drop
            return
        self.send_response(reply.status)
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        headers = dict(reply.headers)
        if reply.status != 204:
            headers.update({"Content-Type": "application/json;charset=UTF-8", "Content-Length": str(len(payload))})
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if reply.status != 204:
            self.wfile.write(payload)

    do_POST = do_PUT = do_DELETE = do_GET


class FakeJira(Endpoints, LocalHTTPService):
    """A fake Jira site on ``http://127.0.0.1:<free port>``; a context manager, or ``start()``/``stop()``.

    :param mode: ``"cloud"`` (Basic ``email:api_token``, ``/search/jql``) or ``"server"`` (Bearer PAT,
        ``/search``); changeable later through :attr:`mode`.
    :param projects: default ``OPS`` (components database, pipelines, reporting) and ``FIN``.
    :param max_results: the page size cap of both search endpoints (Jira's is larger; small pages test paging).
    """

    service_name = "fake-jira"
    handler_class = _Handler

    def __init__(self, mode: str = CLOUD, *, email: str = DEFAULT_EMAIL, api_token: str = DEFAULT_API_TOKEN,
                 pat: str = DEFAULT_PAT, projects: Iterable[JiraProject] | None = None, max_results: int = 100,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.mode = mode
        self.email, self.api_token, self.pat = email, api_token, pat
        self.max_results = max_results
        self._init_http(host, port)
        self.bot = JiraUser("712020:0f5b-opsflow-bot", "opsflow-bot", email, "opsflow bot")
        users = [self.bot, JiraUser("5b10a2844c20165700ede21g", "alice", "alice@example.com", "Alice Ops"),
                 JiraUser("5b109f2e9729b51b54dc274d", "bob", "bob@example.com", "Bob Finance")]
        self.tracker = JiraTracker(copy.deepcopy(list(DEFAULT_PROJECTS if projects is None else projects)), users,
                                   lambda: self.url, lambda: self.cloud)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._expired = False
        self._routes = self._route_table()
        self.operations = sorted({name for _, _, name, _ in self._routes})

    # --- configuration and Airflow wiring -------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {value!r}")
        self._mode = value

    @property
    def cloud(self) -> bool:
        return self._mode == CLOUD

    def search_delay(self, seconds: float) -> None:
        """Writes become visible to JQL search only ``seconds`` later, except ``reconcileIssues`` ids (Jira Cloud).

        Until then a new issue is missing from results and an edited one matches in its previous state.
        ``search_delay(0)`` makes everything visible at once.
        """
        self.tracker.set_search_delay(seconds)

    def expire_token(self, expired: bool = True) -> None:
        """Make every credential fail with 401 (an expired API token or PAT) until called with False."""
        self._expired = expired

    def set_labels_on_create_screen(self, project: str, on: bool) -> None:
        """With ``on=False``, creating an issue in ``project`` with ``labels`` fails with 400 (jiralert #74)."""
        self._project_config(project).labels_on_create_screen = on

    def _project_config(self, key: str) -> JiraProject:
        try:
            return self.tracker.projects[key]
        except KeyError:
            raise ValueError(f"no project {key!r}: one of {sorted(self.tracker.projects)}") from None

    def jira_connection(self, conn_id: str = "opsflow_jira_default", mode: str | None = None) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<ID>": json}`` for an ``opsflow_jira`` connection to this server.

        Cloud: login = email, password = API token; Server: password = PAT, no login. Extra ``deployment``.
        """
        mode = mode or self.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        cloud = mode == CLOUD
        conn = {"conn_type": "opsflow_jira", "host": self.url, "login": self.email if cloud else "",
                "password": self.api_token if cloud else self.pat, "extra": {"deployment": mode}}
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}

    def client(self, *, timeout: float = 10, max_retries: int = 3, max_retry_delay: float | None = None,
               **kwargs: Any) -> JIRA:
        """A ``jira.JIRA`` for the current mode. ``max_retry_delay`` caps its session's back-off (default 60 s)."""
        from jira import JIRA

        auth: dict[str, Any] = {"basic_auth": (self.email, self.api_token)} if self.cloud else {"token_auth": self.pat}
        client = JIRA(server=self.url, timeout=timeout, max_retries=max_retries, **auth, **kwargs)
        if max_retry_delay is not None:
            client._session.max_retry_delay = max_retry_delay  # type: ignore[assignment]
        return client

    # --- seeding and what happened ------------------------------------------------------------------------

    def add_issue(self, project: str = "OPS", summary: str = "Seeded issue", *, issuetype: str = "Task",
                  labels: Iterable[str] = (), status: str = "To Do", resolution: str | None = None,
                  priority: str = "Medium", components: Iterable[str] = (), created: datetime | None = None,
                  resolved: datetime | None = None, description: str | None = None) -> JiraIssue:
        """Put an issue in place without a request (searchable at once); Done issues get ``resolution`` "Done"."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {list(STATUSES)}")
        self._project_config(project)
        now = self.tracker.now()
        done = STATUSES[status].category == "done"
        issue = JiraIssue(0, "", project, issuetype, summary, created or now, resolved or created or now,
                          description=description, status=status, labels=sorted(set(labels)), priority=priority,
                          reporter=self.bot, components=list(components),
                          resolution=(resolution or "Done") if done else resolution,
                          resolutiondate=(resolved or now) if done or resolution else None)
        return copy.deepcopy(self.tracker.seed(issue))

    @property
    def issues(self) -> list[JiraIssue]:
        """Every issue (fields, comments, transitions), in creation order; copies."""
        with self.tracker.lock:
            return [copy.deepcopy(i) for _, i in sorted(self.tracker.issues.items())]

    def issue(self, key: str) -> JiraIssue:
        try:
            return copy.deepcopy(self.tracker.find(key))
        except JiraApiError:
            raise LookupError(f"no issue {key!r} in the fake Jira") from None

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def mark(self) -> int:
        """A position in :attr:`requests`, for ``calls(since=...)``: what one run did."""
        with self._lock:
            return len(self._requests)

    def calls(self, method: str | None = None, path_prefix: str | None = None, *, name: str | None = None,
              since: int = 0) -> list[RecordedRequest]:
        """Recorded requests filtered by HTTP method, path prefix and/or operation name, from ``since`` on."""
        return [r for r in self.requests[since:]
                if (method is None or r.method == method.upper())
                and (path_prefix is None or r.path.startswith(path_prefix)) and (name is None or r.name == name)]

    def writes(self, since: int = 0) -> list[RecordedRequest]:
        """Requests that may have changed something (creates, edits, comments, transitions)."""
        return [r for r in self.requests[since:] if r.is_write]

    def reset(self) -> None:
        """Forget issues, requests and faults; un-expire the token, search delay 0 (projects and mode stay)."""
        self.tracker.reset()
        self.tracker.set_search_delay(0)
        self._expired = False
        with self._lock:
            self._requests.clear()
            self._faults.clear()

    # --- faults -------------------------------------------------------------------------------------------

    def _check_target(self, target: str) -> None:
        if not target.startswith("/") and target not in self.operations:
            raise ValueError(f"unknown operation {target!r}: one of {self.operations}, or a path prefix")

    def fail_next(self, target: str, *, status: int = 429, retry_after: int | None = 1, times: int = 1,
                  message: str | None = None) -> None:
        """Refuse the next ``times`` requests of ``target`` (an operation name or a path prefix), unprocessed.

        ``Retry-After: retry_after`` is sent unless None (the jira library retries 429 always, 503 only with it).
        """
        self._check_target(target)
        with self._lock:
            self._faults.append(_Fault(target, False, times, status, retry_after, message))

    def drop_response_next(self, target: str = "create", times: int = 1) -> None:
        """Process the next ``times`` requests of ``target`` (the write happens), then close without answering."""
        self._check_target(target)
        with self._lock:
            self._faults.append(_Fault(target, True, times))

    def _take_fault(self, name: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.target == name or (fault.target.startswith("/") and path.startswith(fault.target)):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
            return None

    # --- request handling (called from the server's threads) ------------------------------------------------

    def _authenticate(self, name: str, headers: Message) -> tuple[JiraUser | None, JiraApiError | None]:
        auth = headers.get("Authorization", "")
        if not auth:  # serverInfo is public on real Jira; the rest needs a user
            return None, None if name == "serverInfo" else JiraApiError(401, [NOT_AUTHENTICATED])
        scheme, _, credential = auth.partition(" ")
        ok = False
        if self.cloud and scheme.lower() == "basic":
            try:
                email, _, token = base64.b64decode(credential.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                email, token = "", ""
            ok = email == self.email and hmac.compare_digest(token.encode(), self.api_token.encode())
        elif not self.cloud and scheme.lower() == "bearer":
            ok = hmac.compare_digest(credential.strip().encode(), self.pat.encode())
        if ok and not self._expired:
            return self.bot, None
        reason = {} if self.cloud else {"X-Seraph-LoginReason": "AUTHENTICATED_FAILED"}
        return None, JiraApiError(401, [AUTH_FAILED], headers={"WWW-Authenticate": 'Basic realm="protected-area"'
                                                               if self.cloud else "Bearer", **reason})

    def _dispatch(self, verb: str, raw_path: str, headers: Message, raw: bytes) -> Reply | None:
        split = urlsplit(raw_path)
        path, query = unquote(split.path), parse_qs(split.query, keep_blank_values=True)
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        found = [(v, m, n, h) for v, p, n, h in self._routes if (m := p.match(path))]
        route = next((r for r in found if r[0] == verb), None)
        name = route[2] if route else "unknown"
        fault = self._take_fault(name, path) if route else None
        if route is None:
            reply = (Reply(405, {"errorMessages": [f"HTTP method {verb} is not supported"], "errors": {}}) if found
                     else _error(not_found(f"null for uri: {self.url}{path}")))
        elif fault is not None and not fault.drop:
            reply = self._fault_reply(fault)
        else:
            actor, refused = self._authenticate(name, headers)
            if refused is not None:
                reply = _error(refused)
            elif bad_json:
                reply = _error(bad_request("Unexpected character in the request body: not valid JSON."))
            else:
                try:
                    reply = route[3](route[1], query, body, actor)
                except JiraApiError as e:
                    reply = _error(e)
        dropped = fault is not None and fault.drop
        kept = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")}
        error = None
        if reply.status >= 400 and isinstance(reply.body, dict):
            error = ", ".join([*reply.body.get("errorMessages", []), *map(str, reply.body.get("errors", {}).values())])
        with self._lock:
            self._requests.append(RecordedRequest(name, verb, path, query, body, None if dropped else reply.status,
                                                  error, kept))
        return None if dropped else reply

    @staticmethod
    def _fault_reply(fault: _Fault) -> Reply:
        default = {429: "Rate limit exceeded.", 503: "Service Unavailable"}.get(fault.status, "Injected failure")
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        if fault.status == 429:
            headers["RateLimit-Reason"] = "jira-burst-based"
        return Reply(fault.status, {"errorMessages": [fault.message or default], "errors": {}}, headers)


def _error(e: JiraApiError) -> Reply:
    return Reply(e.status, e.body(), e.headers)
